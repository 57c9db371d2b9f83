package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/meterd/meterd/meter"
)

func (s *Server) registerTrackRoutes(r *mux.Router) {
	r.HandleFunc("/v1/track", s.requireService(s.handleTrack)).Methods(http.MethodPost)
}

// trackRequest is the body of POST /v1/track.
type trackRequest struct {
	APIKey    string   `json:"api_key"`
	AccountID string   `json:"account_id"`
	Endpoint  string   `json:"endpoint"`
	Method    string   `json:"method"`
	Status    int      `json:"status"`
	LatencyMS *float64 `json:"latency_ms"`
	ID        string   `json:"id"`
	// latency is where the fast decoder points LatencyMS.
	latency float64
}

var errMissingKey = newError(http.StatusUnauthorized, "missing_api_key",
	"an API key is required: api_key in the body, X-API-Key, or Authorization: Bearer (or account_id with the service token)")

// call converts the request into a meter.Call, validating what the meter
// cannot (units, presence of an identity).
func (t *trackRequest) call(headerKey string) (meter.Call, error) {
	c := meter.Call{APIKey: t.APIKey, AccountID: t.AccountID, Endpoint: t.Endpoint,
		Method: t.Method, Status: t.Status, ID: t.ID}
	if c.APIKey == "" {
		c.APIKey = headerKey
	}
	if c.APIKey == "" && c.AccountID == "" {
		return c, errMissingKey
	}
	if t.LatencyMS != nil {
		ms := *t.LatencyMS
		if math.IsNaN(ms) || ms < 0 || ms > 3_600_000 {
			return c, meter.Invalid("latency_ms", "must be between 0 and 3600000")
		}
		c.LatencyMicros = int64(ms * 1000)
	}
	return c, nil
}

// trackResponse is the body of a track answer.
type trackResponse struct {
	Allowed   bool   `json:"allowed"`
	Duplicate bool   `json:"duplicate,omitempty"`
	AccountID string `json:"account_id"`
	Plan      string `json:"plan"`
	Limit     *int64 `json:"limit"`
	Remaining *int64 `json:"remaining"`
	Reset     int64  `json:"reset"`
	ResetAt   string `json:"reset_at"`
	Overage   bool   `json:"overage"`
	EventID   string `json:"event_id,omitempty"`
}

func newTrackResponse(res meter.Result) trackResponse {
	out := trackResponse{Allowed: res.Allowed, Duplicate: res.Duplicate, AccountID: res.AccountID,
		Plan: res.Plan, Reset: res.Reset.Unix(), ResetAt: res.Reset.Format(time.RFC3339),
		Overage: res.Overage, EventID: res.EventID}
	if !res.Unlimited {
		limit, remaining := res.Limit, res.Remaining
		out.Limit, out.Remaining = &limit, &remaining
	}
	return out
}

// quotaExceededBody is a 429 answer: the standard error plus the decision.
// writeQuotaExceeded writes exactly its encoding/json form.
type quotaExceededBody struct {
	errorBody
	trackResponse
}

func (s *Server) handleTrack(w http.ResponseWriter, r *http.Request) {
	var req trackRequest
	if err := decodeTrack(w, r, &req, MaxBodyBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	call, err := req.call(s.apiKeyFrom(r))
	if err == nil {
		err = s.checkAccountID(call)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.track(r, call)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body := newTrackResponse(res)
	s.writeDecision(w, res, &body)
}

// track runs the decision and records its measurements.
func (s *Server) track(r *http.Request, c meter.Call) (meter.Result, error) {
	start := time.Now()
	res, err := s.meter.Track(r.Context(), c)
	if err == nil && !res.Duplicate {
		s.obs.ObserveDecision(res.Plan, res.Allowed, res.Overage, time.Since(start))
	}
	return res, err
}

// writeDecision sets the rate-limit headers and answers 200 or 429.
func (s *Server) writeDecision(w http.ResponseWriter, res meter.Result, body *trackResponse) {
	setQuotaHeaders(w.Header(), res, res.Period, s.meter.Now())
	if res.Allowed {
		writeTrackJSON(w, http.StatusOK, body)
		return
	}
	if res.Blocked() {
		w.Header().Del("Retry-After") // waiting does not help a suspended account
		be := blockedError(res)
		var out quotaExceededBody
		out.Error.Code, out.Error.Message = be.code, be.message
		out.trackResponse = *body
		writeJSON(w, be.status, out)
		return
	}
	writeQuotaExceeded(w, http.StatusTooManyRequests, quotaMessage(res), body)
}

// quotaMessage names an upgrade only if a configured plan offers more
// calls than the customer's.
func quotaMessage(res meter.Result) string {
	msg := fmt.Sprintf("Monthly limit of %d calls on the %s plan reached; it resets at %s.",
		res.Limit, res.Plan, res.Reset.Format(time.RFC3339))
	if res.Upgrade != "" {
		msg += " Upgrade to " + planTitle(res.Upgrade) + " for more calls."
	}
	return msg
}

// planTitle capitalises a plan name for prose: "pro" -> "Pro".
func planTitle(name string) string {
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		return name
	}
	return string(name[0]-'a'+'A') + name[1:]
}

// setRateLimitHeaders adds X-RateLimit-* (Limit and Remaining omitted for
// unlimited plans) and, on a denial, Retry-After in seconds to hb.
func setRateLimitHeaders(hb *headerBatch, res meter.Result, now time.Time) {
	if !res.Unlimited {
		hb.buf = strconv.AppendInt(hb.buf, res.Limit, 10)
		hb.end(hdrLimit)
		// A soft plan past its included calls is not limited: a Remaining
		// of 0 would make standard clients wait for the reset while their
		// calls are allowed (and billed as overage), so it is left out.
		if !inOverage(res) {
			hb.buf = strconv.AppendInt(hb.buf, res.Remaining, 10)
			hb.end(hdrRemaining)
		}
	}
	hb.buf = strconv.AppendInt(hb.buf, resetUnix(res.Reset), 10)
	hb.end(hdrReset)
	if !res.Allowed {
		hb.buf = strconv.AppendInt(hb.buf, retryAfter(res.Reset, now), 10)
		hb.end(hdrRetryAfter)
	}
}

// inOverage reports a soft plan whose included calls are used up.
func inOverage(res meter.Result) bool { return res.Soft && res.Allowed && res.Remaining == 0 }

// resetUnix is the reset in whole unix seconds, rounded up, so the header
// never announces a reset before the real one.
func resetUnix(t time.Time) int64 {
	if t.Nanosecond() > 0 {
		return t.Unix() + 1
	}
	return t.Unix()
}

func retryAfter(reset, now time.Time) int64 {
	return max(secondsUntil(reset, now), 1)
}
