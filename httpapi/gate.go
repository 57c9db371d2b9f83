package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/meterd/meterd/meter"
)

// gate is the decision step shared by the reverse proxy, the Go
// middleware and forward auth: find the API key, reserve the call, answer
// 401/429 itself, and once the API has answered record the call and set
// the rate-limit headers. One gate serves many requests concurrently; it
// is never changed after construction.
type gate struct {
	meter *meter.Meter
	// keyHeader and keyQuery name an extra header and a query parameter
	// holding the key ("" for none); X-API-Key and Authorization: Bearer
	// are always read.
	keyHeader string
	keyQuery  string
	// stripKey removes the key from what the API receives.
	stripKey bool
	// endpoint names the call (default: the request path, which the meter
	// folds into a template).
	endpoint func(*http.Request) string
	log      *slog.Logger
	obs      Observer
}

func newGate(m *meter.Meter) *gate {
	return &gate{meter: m, log: slog.Default(), obs: nopObserver{},
		endpoint: func(r *http.Request) string { return r.URL.Path }}
}

// headerAPIKey is X-API-Key in canonical form: Header.Get with it does
// not allocate a canonical copy on every call.
const headerAPIKey = "X-Api-Key"

// keySource says where a request carried its API key, so stripping
// removes exactly that.
type keySource uint8

const (
	keyMissing keySource = iota
	keyInCustomHeader
	keyInAPIKeyHeader
	keyInBearer
	keyInQuery
)

// findKey reads the API key: the configured header, X-API-Key, the
// Authorization bearer credential, then the configured query parameter.
func (g *gate) findKey(r *http.Request) (string, keySource) {
	if g.keyHeader != "" {
		if k := r.Header.Get(g.keyHeader); k != "" {
			return k, keyInCustomHeader
		}
	}
	if k := r.Header.Get(headerAPIKey); k != "" {
		return k, keyInAPIKeyHeader
	}
	if k := bearer(r); k != "" {
		return k, keyInBearer
	}
	if g.keyQuery != "" && r.URL.RawQuery != "" {
		if k := r.URL.Query().Get(g.keyQuery); k != "" {
			return k, keyInQuery
		}
	}
	return "", keyMissing
}

// strip removes the key from where it was found in h and u.
func (g *gate) strip(h http.Header, u *url.URL, src keySource) {
	switch src {
	case keyInCustomHeader:
		h.Del(g.keyHeader)
	case keyInAPIKeyHeader:
		h.Del(headerAPIKey)
	case keyInBearer:
		h.Del("Authorization")
	case keyInQuery:
		q := u.Query()
		q.Del(g.keyQuery)
		u.RawQuery = q.Encode()
	}
}

// isPreflight reports a CORS preflight. Browsers send it without
// credentials, so it cannot carry an API key; it passes unmetered, as the
// API's own CORS handling expects.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// gatedCall is an allowed call on its way to the API, carried in the
// request context.
type gatedCall struct {
	resv *meter.Reservation
	src  keySource
	// start is when the call was let through: latency is measured from it.
	start time.Time
}

type gatedCallKey struct{}

func gatedCallFrom(ctx context.Context) *gatedCall {
	c, _ := ctx.Value(gatedCallKey{}).(*gatedCall)
	return c
}

// DecisionFrom returns the meter's decision for a request let through by
// Middleware (or the proxy), e.g. to read the caller's account and plan.
func DecisionFrom(ctx context.Context) (meter.Result, bool) {
	if c := gatedCallFrom(ctx); c != nil {
		return c.resv.Result(), true
	}
	return meter.Result{}, false
}

// admit decides r. If the call may proceed it returns r carrying the
// gatedCall in its context; otherwise it has answered (401, 429, 400,
// 503) and returns nil.
func (g *gate) admit(w http.ResponseWriter, r *http.Request) (*http.Request, *gatedCall) {
	key, src := g.findKey(r)
	resv := g.decide(w, r, meter.Call{APIKey: key, Endpoint: g.endpoint(r), Method: r.Method})
	if resv == nil {
		return nil, nil
	}
	if !resv.Result().Allowed {
		g.writeDenied(w, resv, http.StatusTooManyRequests)
		return nil, nil
	}
	c := &gatedCall{resv: resv, src: src, start: time.Now()}
	return r.WithContext(context.WithValue(r.Context(), gatedCallKey{}, c)), c
}

// decide reserves the call; on an error it answers and returns nil. A
// denied call comes back already recorded.
func (g *gate) decide(w http.ResponseWriter, r *http.Request, c meter.Call) *meter.Reservation {
	if c.APIKey == "" && c.AccountID == "" {
		g.writeError(w, r, errUnauthorized)
		return nil
	}
	start := time.Now()
	resv, err := g.meter.Reserve(r.Context(), c)
	if err != nil {
		g.writeError(w, r, err)
		return nil
	}
	res := resv.Result()
	g.obs.ObserveDecision(res.Plan, res.Allowed, res.Overage, time.Since(start))
	return resv
}

// finish records the call with the API's status and latency and sets the
// rate-limit headers on h (the response about to be sent). The record
// outlives a client that has gone away. A ledger failure is logged, not
// answered: the API has already done the work, so its answer still goes
// out rather than an error that would invite a retry.
func (g *gate) finish(ctx context.Context, c *gatedCall, h http.Header, status int, latency time.Duration) {
	if err := c.resv.Finish(context.WithoutCancel(ctx), status, latency); err != nil {
		g.log.ErrorContext(ctx, "record metered call", "account", c.resv.Result().AccountID, "error", err)
	}
	setQuotaHeaders(h, c.resv.Result(), c.resv.Period(), g.meter.Now())
}

// headerDenied marks a quota denial (as opposed to an authentication
// failure) for gateways that see only the status, e.g. nginx's 403.
const headerDenied = "X-Meter-Denied"

// writeDenied answers a quota denial with status (429, or 403 for nginx
// auth_request), the rate-limit headers and the /v1/track 429 body.
func (g *gate) writeDenied(w http.ResponseWriter, resv *meter.Reservation, status int) {
	res := resv.Result()
	setQuotaHeaders(w.Header(), res, resv.Period(), g.meter.Now())
	if res.Blocked() {
		// A suspended account: 403 for every gateway (nginx passes a 403
		// through as is), and no Retry-After, since waiting does not help.
		w.Header().Del("Retry-After")
		be := blockedError(res)
		w.Header().Set(headerDenied, res.AccountStatus)
		var out quotaExceededBody
		out.Error.Code, out.Error.Message = be.code, be.message
		out.trackResponse = newTrackResponse(res)
		writeJSON(w, be.status, out)
		return
	}
	w.Header().Set(headerDenied, "quota")
	body := newTrackResponse(res)
	writeQuotaExceeded(w, status, quotaMessage(res), &body)
}

// writeError answers err as JSON through classify, the one mapping of
// domain errors to HTTP, and logs internal errors only.
func (g *gate) writeError(w http.ResponseWriter, r *http.Request, err error) {
	writeErrorTo(w, r, g.log, err)
}

func writeErrorTo(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	ae := classify(err)
	switch ae.status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="meterd"`)
	default:
		if ae.status >= 500 {
			log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "error", err)
		}
	}
	var body errorBody
	body.Error.Code, body.Error.Message = ae.code, ae.message
	writeJSON(w, ae.status, body)
}
