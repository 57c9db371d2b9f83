package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Call is one API call to meter, the body of POST /v1/track. Set APIKey
// or AccountID (the latter needs the service token when meterd has one).
type Call struct {
	APIKey    string   `json:"api_key,omitempty"`
	AccountID string   `json:"account_id,omitempty"`
	Endpoint  string   `json:"endpoint"`
	Method    string   `json:"method"`
	Status    int      `json:"status,omitempty"`
	LatencyMS *float64 `json:"latency_ms,omitempty"`
	// ID is the idempotency id; Track fills in a random one when empty,
	// and every retry sends the same.
	ID string `json:"id,omitempty"`
}

// Decision is meterd's answer to a call.
type Decision struct {
	Allowed   bool   `json:"allowed"`
	Duplicate bool   `json:"duplicate,omitempty"`
	AccountID string `json:"account_id"`
	Plan      string `json:"plan"`
	// Limit and Remaining are nil on unlimited plans.
	Limit     *int64 `json:"limit"`
	Remaining *int64 `json:"remaining"`
	Reset     int64  `json:"reset"`
	Overage   bool   `json:"overage"`
	EventID   string `json:"event_id,omitempty"`
	// Code says why a call was denied: quota_exceeded (429),
	// account_suspended or account_deleted (403). Empty when allowed.
	Code string `json:"-"`
	// Message is meterd's explanation of a denial.
	Message string `json:"-"`
	// Status is the HTTP status meterd answered.
	Status int `json:"-"`
	// Header is meterd's answer's header (Authorize only): the rate-limit
	// fields a gateway passes on to its client.
	Header http.Header `json:"-"`
}

// Track decides and counts one call. A denial is not an error: the
// Decision says Allowed false and why (Code). Errors mean the call was not
// metered (bad key, bad input, meterd unreachable after retries).
func (c *Client) Track(ctx context.Context, call Call) (Decision, error) {
	if call.ID == "" {
		call.ID = NewIdempotencyID()
	}
	var d Decision
	status, raw, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/track", body: call,
		auth: authService, idempotent: true}, &d)
	if err != nil {
		return denial(status, raw, err)
	}
	d.Status = status
	return d, nil
}

// denial turns a 429/403 decision body into a Decision; any other error
// is returned as it is.
func denial(status int, raw []byte, err error) (Decision, error) {
	var e *Error
	if !errors.As(err, &e) || (status != http.StatusTooManyRequests && status != http.StatusForbidden) {
		return Decision{}, err
	}
	var d Decision
	if json.Unmarshal(raw, &d) != nil || d.AccountID == "" {
		return Decision{}, err // a 403 that is not a decision
	}
	d.Allowed, d.Code, d.Message, d.Status = false, e.Code, e.Message, status
	return d, nil
}

// Authorize asks forward auth (GET /v1/authz) whether the request method
// uri with apiKey may pass, and counts it. Like Track, a denial is a
// Decision with Allowed false; Limit, Remaining and Reset come from the
// rate-limit headers. It is never retried after a transport error: meterd
// may have counted the call.
func (c *Client) Authorize(ctx context.Context, apiKey, method, uri string) (Decision, error) {
	h := http.Header{}
	h.Set("X-Forwarded-Method", method)
	h.Set("X-Forwarded-Uri", uri)
	if c.serviceToken != "" {
		h.Set("X-Meter-Service-Token", c.serviceToken)
	}
	var got http.Header
	status, raw, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/authz", header: h, apiKey: apiKey,
		gotHeader: &got}, nil)
	if err != nil {
		d, err := denial(status, raw, err)
		d.Header = got
		return d, err
	}
	d := Decision{Allowed: true, Status: status, Header: got, AccountID: got.Get("X-Meter-Account"),
		Plan: got.Get("X-Meter-Plan")}
	if v, err := strconv.ParseInt(got.Get("X-RateLimit-Limit"), 10, 64); err == nil {
		d.Limit = &v
	}
	if v, err := strconv.ParseInt(got.Get("X-RateLimit-Remaining"), 10, 64); err == nil {
		d.Remaining = &v
	}
	d.Reset, _ = strconv.ParseInt(got.Get("X-RateLimit-Reset"), 10, 64)
	return d, nil
}

// Event is one call reported after the fact (POST /v1/events).
type Event struct {
	Call
	// Timestamp is when the call happened (zero: now).
	Timestamp time.Time `json:"-"`
}

// MarshalJSON writes the timestamp as RFC 3339, and omits it when zero.
func (e Event) MarshalJSON() ([]byte, error) {
	type wire struct {
		Call
		Timestamp string `json:"timestamp,omitempty"`
	}
	w := wire{Call: e.Call}
	if !e.Timestamp.IsZero() {
		w.Timestamp = e.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	return json.Marshal(w)
}

// EventsResult is the answer of POST /v1/events.
type EventsResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   []struct {
		Index  int    `json:"index"`
		ID     string `json:"id,omitempty"`
		Code   string `json:"code"`
		Reason string `json:"reason"`
	} `json:"rejected"`
}

// Events records up to 1,000 calls without enforcement. Events without an
// ID get one before the first attempt, so a retried batch counts each
// event once (those that landed come back as duplicates).
func (c *Client) Events(ctx context.Context, events []Event) (EventsResult, error) {
	evs := make([]Event, len(events))
	copy(evs, events)
	for i := range evs {
		if evs[i].ID == "" {
			evs[i].ID = NewIdempotencyID()
		}
	}
	var out EventsResult
	_, _, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/events",
		body: map[string]any{"events": evs}, auth: authService, idempotent: true}, &out)
	return out, err
}

// Usage is an account's current period (GET /api/usage/current).
type Usage struct {
	AccountID        string  `json:"account_id"`
	Plan             string  `json:"plan"`
	PeriodStart      string  `json:"period_start"`
	PeriodEnd        string  `json:"period_end"`
	APICalls         int64   `json:"api_calls"`
	Limit            *int64  `json:"limit"`
	Remaining        *int64  `json:"remaining"`
	OverageCalls     int64   `json:"overage_calls"`
	OverageCostCents int64   `json:"overage_cost_cents"`
	UsagePercentage  float64 `json:"usage_percentage"`
	DeniedCalls      int64   `json:"denied_calls"`
}

// Day is one day of usage history.
type Day struct {
	Date         string `json:"date"`
	APICalls     int64  `json:"api_calls"`
	OverageCalls int64  `json:"overage_calls"`
	DeniedCalls  int64  `json:"denied_calls"`
	Errors       int64  `json:"errors"`
}

// UsageOf reads an account's current period with the admin token.
func (c *Client) UsageOf(ctx context.Context, accountID string) (Usage, error) {
	var u Usage
	_, _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/usage/current",
		query: map[string][]string{"account_id": {accountID}}, auth: authAdmin, idempotent: true}, &u)
	return u, err
}

// HistoryOf reads an account's last days of usage, oldest first, with the
// admin token.
func (c *Client) HistoryOf(ctx context.Context, accountID string, days int) ([]Day, error) {
	var out struct {
		Days []Day `json:"days"`
	}
	_, _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/usage/history",
		query: map[string][]string{"account_id": {accountID}, "days": {strconv.Itoa(days)}},
		auth:  authAdmin, idempotent: true}, &out)
	return out.Days, err
}
