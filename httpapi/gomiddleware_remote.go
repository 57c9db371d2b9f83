package httpapi

import (
	"errors"
	"net/http"

	"github.com/meterd/meterd/client"
)

// RemoteMiddleware meters a Go service through a running meterd, with the
// client, where Middleware embeds the meter and its ledger in the service
// itself (which a bbolt file allows to one process only, so the embedded
// mode cannot run beside a `meterd serve` on the same ledger).
//
// Each request's API key is sent to meterd's forward auth (GET
// /v1/authz), which decides and counts the call before next runs, as the
// gateway recipes do: the call is recorded when it arrives, without the
// status or latency of the service's answer. A missing or unknown key
// gets meterd's 401, an exhausted hard quota its 429, a suspended or
// deleted account its 403 (JSON, with the rate-limit headers), and next
// never runs. An allowed call reaches next with the rate-limit headers
// set on the response and X-Meter-Account / X-Meter-Plan on the request.
//
// When meterd cannot be reached or answers 5xx (after the client's
// retries), the middleware fails closed: a JSON 503 with Retry-After. With
// failOpen the request goes to next unmetered instead.
//
// Of opts, WithKeyHeader, WithKeyQuery, WithStripKey, WithEndpoint and
// WithLogger apply.
func RemoteMiddleware(c *client.Client, failOpen bool, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	g := newGate(nil)
	for _, o := range opts {
		o(g)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			serveRemote(c, g, failOpen, next, w, r)
		})
	}
}

var errMeterUnavailable = newError(http.StatusServiceUnavailable, "meter_unavailable",
	"usage metering is unavailable; retry shortly")

func serveRemote(c *client.Client, g *gate, failOpen bool, next http.Handler, w http.ResponseWriter, r *http.Request) {
	if isPreflight(r) {
		next.ServeHTTP(w, r)
		return
	}
	key, src := g.findKey(r)
	if key == "" {
		writeErrorTo(w, r, g.log, errUnauthorized)
		return
	}
	target := g.endpoint(r)
	if r.URL.RawQuery != "" && src != keyInQuery {
		target += "?" + r.URL.RawQuery
	}
	d, err := c.Authorize(r.Context(), key, r.Method, target)
	var ce *client.Error
	switch {
	case errors.As(err, &ce) && ce.Status < 500:
		writeErrorTo(w, r, g.log, newError(ce.Status, ce.Code, ce.Message))
		return
	case err != nil:
		g.log.WarnContext(r.Context(), "meterd unreachable", "fail_open", failOpen, "error", err)
		if failOpen {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", "5")
		writeJSON(w, errMeterUnavailable.status, errorBodyOf(errMeterUnavailable))
		return
	}
	copyRateLimitHeaders(w.Header(), d.Header)
	if !d.Allowed {
		writeJSON(w, d.Status, errorBodyOf(newError(d.Status, d.Code, d.Message)))
		return
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set(HeaderAccount, d.AccountID)
	r2.Header.Set(HeaderPlan, d.Plan)
	if g.stripKey {
		g.strip(r2.Header, r2.URL, src)
	}
	next.ServeHTTP(w, r2)
}

// remoteRateLimitHeaders are the fields of meterd's answer a client sees.
var remoteRateLimitHeaders = []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
	"Retry-After", HeaderRateLimitPolicy, HeaderRateLimit, HeaderQuotaWarning}

func copyRateLimitHeaders(dst, src http.Header) {
	for _, name := range remoteRateLimitHeaders {
		if v := src.Get(name); v != "" {
			dst.Set(name, v)
		}
	}
}

func errorBodyOf(ae *apiError) errorBody {
	var body errorBody
	body.Error.Code, body.Error.Message = ae.code, ae.message
	return body
}
