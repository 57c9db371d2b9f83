package httpapi_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestUsage_PeriodBoundary: a full Free account is denied up to the last
// nanosecond of January and allowed at 00:00:00Z on Feb 1; a clock that
// then steps back across the boundary never resets the quota again.
func TestUsage_PeriodBoundary(t *testing.T) {
	t.Parallel()
	feb1 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	mar1 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := newTestClock(feb1.Add(-time.Millisecond)) // Jan 31 23:59:59.999Z
	s := MustOpenServer(t, WithClock(clock))
	key := s.MustAccountWithKey(t, "acct_edge", "free")
	s.MustFill(t, key, 1000)

	resp := s.Track(t, key)
	r := decodeTrack(t, resp, http.StatusTooManyRequests)
	wantHeaders(t, resp.Header, map[string]string{"Retry-After": "1",
		"X-RateLimit-Reset": strconv.FormatInt(feb1.Unix(), 10)})
	if r.Reset != feb1.Unix() {
		t.Errorf("reset %d, want Feb 1 (%d)", r.Reset, feb1.Unix())
	}
	clock.Advance(time.Millisecond - time.Nanosecond) // Jan 31 23:59:59.999999999Z
	mustErrorBody(t, s.Track(t, key), http.StatusTooManyRequests, "quota_exceeded")

	steps := []struct {
		name          string
		at            time.Time
		wantRemaining int64
	}{
		{"at 00:00:00Z Feb 1", feb1, 999},
		{"clock stepped back 2h", feb1.Add(-2 * time.Hour), 998},
		{"still stepped back", feb1.Add(-2*time.Hour + time.Minute), 997},
		{"clock forward again", feb1.Add(30 * time.Minute), 996},
	}
	for _, st := range steps {
		clock.Set(st.at)
		resp := s.Track(t, key)
		r := decodeTrack(t, resp, http.StatusOK)
		if !r.Allowed || *r.Remaining != st.wantRemaining || r.Reset != mar1.Unix() {
			t.Errorf("%s: %+v, want allowed with %d remaining until Mar 1", st.name, r, st.wantRemaining)
		}
	}

	u := s.MustUsage(t, "acct_edge")
	if u.PeriodStart != "2026-02-01T00:00:00Z" || u.APICalls != 4 || u.DeniedCalls != 0 {
		t.Errorf("usage %+v, want February with 4 calls", u)
	}
	wantCounter(t, s, "acct_edge", feb1.AddDate(0, -1, 0), 1000, 2)
	wantCounter(t, s, "acct_edge", feb1, 4, 0)

	// After a restart February's counter is what the meter starts from.
	s = s.MustReopen(t)
	r = decodeTrack(t, s.Track(t, key), http.StatusOK)
	if *r.Remaining != 995 {
		t.Errorf("after restart: remaining %d, want 995", *r.Remaining)
	}
}

// wantCounter checks the ledger's period counter for account.
func wantCounter(tb testing.TB, s *TestServer, account string, period time.Time, calls, denied int64) {
	tb.Helper()
	c, err := s.Ledger.Counter(context.Background(), account, period)
	if err != nil {
		tb.Fatal(err)
	}
	if c.Calls != calls || c.Denied != denied {
		tb.Errorf("ledger counter %s %s: %d calls %d denied, want %d and %d",
			account, period.Format(time.DateOnly), c.Calls, c.Denied, calls, denied)
	}
}

// TestUsage_Isolation: an API key reads only its own account's usage; the
// admin token may read any account's.
func TestUsage_Isolation(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	keyA := s.MustAccountWithKey(t, "acct_a", "free")
	keyB := s.MustAccountWithKey(t, "acct_b", "free")
	s.Track(t, keyA)
	s.Track(t, keyB)
	s.Track(t, keyB)

	bearerA := map[string]string{"Authorization": "Bearer " + keyA}
	admin := map[string]string{"Authorization": "Bearer " + testAdminToken}
	tests := []struct {
		name, path string
		header     map[string]string
		status     int
		code       string // error code, or the account read on 200
	}{
		{"A reads B", "/api/usage/current?account_id=acct_b", bearerA, http.StatusForbidden, "forbidden"},
		{"A reads B by X-API-Key", "/api/usage/current?account_id=acct_b", map[string]string{"X-API-Key": keyA}, http.StatusForbidden, "forbidden"},
		{"A reads B history", "/api/usage/history?account_id=acct_b", bearerA, http.StatusForbidden, "forbidden"},
		{"A reads B endpoints", "/api/usage/endpoints?account_id=acct_b", bearerA, http.StatusForbidden, "forbidden"},
		{"A reads A", "/api/usage/current", bearerA, http.StatusOK, "acct_a"},
		{"A names A", "/api/usage/current?account_id=acct_a", bearerA, http.StatusOK, "acct_a"},
		{"admin reads B", "/api/usage/current?account_id=acct_b", admin, http.StatusOK, "acct_b"},
		{"admin reads B history", "/api/usage/history?account_id=acct_b", admin, http.StatusOK, "acct_b"},
		{"admin names no account", "/api/usage/current", admin, http.StatusBadRequest, "invalid_request"},
		{"admin names unknown", "/api/usage/current?account_id=acct_zz", admin, http.StatusNotFound, "account_not_found"},
		{"no credentials", "/api/usage/current?account_id=acct_b", nil, http.StatusUnauthorized, "unauthorized"},
		{"unknown key", "/api/usage/current", map[string]string{"X-API-Key": "mk_" + keyA[3:40]}, http.StatusUnauthorized, "invalid_api_key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Do(t, request{Method: http.MethodGet, Path: tc.path, Header: tc.header})
			if tc.status != http.StatusOK {
				mustErrorBody(t, resp, tc.status, tc.code)
				return
			}
			var u usageCurrent
			if resp.Status != http.StatusOK {
				t.Fatalf("status %d: %s", resp.Status, resp.Body)
			}
			mustUnmarshal(t, resp.Body, &u)
			if u.AccountID != tc.code {
				t.Errorf("read %s, want %s", u.AccountID, tc.code)
			}
		})
	}
	if u := s.MustUsage(t, "acct_b"); u.APICalls != 2 {
		t.Errorf("acct_b api_calls %d, want 2", u.APICalls)
	}
}

// TestUsage_Current checks every field of /api/usage/current by value.
// DESIGN.md lists ten; denied_calls and last_call_at are extras.
func TestUsage_Current(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_cur", "free")
	for range 3 {
		s.Track(t, key)
	}
	resp := s.Do(t, request{Method: http.MethodGet, Path: "/api/usage/current",
		Header: map[string]string{"Authorization": "Bearer " + key}})
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	want := map[string]string{
		"account_id": `"acct_cur"`, "plan": `"free"`,
		"period_start": `"2026-03-01T00:00:00Z"`, "period_end": `"2026-04-01T00:00:00Z"`,
		"api_calls": "3", "limit": "1000", "remaining": "997", "overage_calls": "0",
		"overage_cost_cents": "0", "usage_percentage": "0.3",
		"denied_calls": "0", "last_call_at": `"2026-03-10T12:00:00Z"`,
	}
	obj := jsonKeys(t, resp.Body)
	requireKeys(t, obj, keysOfStrings(want)...)
	for k, v := range want {
		if string(obj[k]) != v {
			t.Errorf("%s = %s, want %s", k, obj[k], v)
		}
	}
}

func keysOfStrings(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// historyDay is one row of /api/usage/history.
type historyDay struct {
	Date         string `json:"date"`
	APICalls     int64  `json:"api_calls"`
	OverageCalls int64  `json:"overage_calls"`
	DeniedCalls  int64  `json:"denied_calls"`
	Errors       int64  `json:"errors"`
}

func TestUsage_History(t *testing.T) {
	t.Parallel()
	plans := mustParsePlans(t, "plans:\n  tiny: {limit: 3, hard: true}\n  soft: {limit: 1, overage_micros: 1000}\n")
	s := MustOpenServer(t, WithPlans(plans), WithClock(newTestClock(time.Date(2026, 3, 8, 10, 0, 0, 0, time.UTC))))
	tiny := s.MustAccountWithKey(t, "acct_tiny", "tiny")
	soft := s.MustAccountWithKey(t, "acct_soft", "soft")
	s.Do(t, trackRequest(t, trackBody{APIKey: tiny, Endpoint: "/v1/a", Method: "GET", Status: 503}))
	s.Track(t, tiny)
	s.Clock.Set(time.Date(2026, 3, 10, 23, 59, 0, 0, time.UTC)) // today, late
	for range 3 {                                               // one allowed, two denied
		s.Track(t, tiny)
		s.Track(t, soft)
	}

	zero := func(date string) historyDay { return historyDay{Date: date} }
	got := mustHistory(t, s, "acct_tiny", "5")
	want := []historyDay{zero("2026-03-06"), zero("2026-03-07"),
		{Date: "2026-03-08", APICalls: 2, Errors: 1}, zero("2026-03-09"),
		{Date: "2026-03-10", APICalls: 1, DeniedCalls: 2}}
	wantDays(t, got, want)
	wantDays(t, mustHistory(t, s, "acct_soft", "1"), []historyDay{{Date: "2026-03-10", APICalls: 3, OverageCalls: 2}})

	if days := mustHistory(t, s, "acct_tiny", ""); len(days) != 30 || days[29].Date != "2026-03-10" || days[0].Date != "2026-02-09" {
		t.Errorf("default history: %d days from %v, want 30 ending today", len(days), days[0])
	}
	if days := mustHistory(t, s, "acct_tiny", "366"); len(days) != 366 || days[365].Date != "2026-03-10" {
		t.Errorf("days=366: %d days, want 366 ending today", len(days))
	}
	for _, path := range []string{"/api/usage/history", "/api/usage/endpoints"} {
		for _, days := range []string{"0", "367", "abc", "-1", "1.5", ""} {
			if days == "" {
				days = "%20"
			}
			t.Run(path+"?days="+days, func(t *testing.T) {
				resp := s.Admin(t, http.MethodGet, path+"?account_id=acct_tiny&days="+days, "")
				mustErrorBody(t, resp, http.StatusBadRequest, "invalid_request")
			})
		}
	}
}

func mustHistory(tb testing.TB, s *TestServer, account, days string) []historyDay {
	tb.Helper()
	path := "/api/usage/history?account_id=" + account
	if days != "" {
		path += "&days=" + days
	}
	resp := s.Admin(tb, http.MethodGet, path, "")
	if resp.Status != http.StatusOK {
		tb.Fatalf("history: %d %s", resp.Status, resp.Body)
	}
	var body struct {
		Days []historyDay `json:"days"`
	}
	mustUnmarshal(tb, resp.Body, &body)
	return body.Days
}

func wantDays(tb testing.TB, got, want []historyDay) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("history has %d days %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			tb.Errorf("day %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// endpointRow is one row of /api/usage/endpoints.
type endpointRow struct {
	Endpoint     string  `json:"endpoint"`
	Method       string  `json:"method"`
	APICalls     int64   `json:"api_calls"`
	Errors       int64   `json:"errors"`
	AvgLatencyMS float64 `json:"avg_latency_ms"`
}

func TestUsage_Endpoints(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t, WithClock(newTestClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))))
	key := s.MustAccountWithKey(t, "acct_ep", "pro")
	calls := []trackBody{
		{Endpoint: "/v1/old/1", Method: "GET", LatencyMS: ptr(1.0)}, // Mar 2: outside 7 days
		{Endpoint: "/v1/users/123", Method: "GET", Status: 200, LatencyMS: ptr(10.0)},
		{Endpoint: "/v1/users/456?expand=1", Method: "get", Status: 200, LatencyMS: ptr(20.0)},
		{Endpoint: "/v1/users/9f1c2d3e-0000-4000-8000-00000000abcd", Method: "GET", Status: 404, LatencyMS: ptr(30.5)},
		{Endpoint: "/v1/orders", Method: "POST", Status: 500, LatencyMS: ptr(5.25)},
	}
	for i, c := range calls {
		if i == 1 {
			s.Clock.Set(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
		}
		c.APIKey = key
		decodeTrack(t, s.Do(t, trackRequest(t, c)), http.StatusOK)
	}
	resp := s.Do(t, request{Method: http.MethodGet, Path: "/api/usage/endpoints?days=7",
		Header: map[string]string{"X-API-Key": key}})
	if resp.Status != http.StatusOK {
		t.Fatalf("endpoints: %d %s", resp.Status, resp.Body)
	}
	var body struct {
		Endpoints []endpointRow `json:"endpoints"`
	}
	mustUnmarshal(t, resp.Body, &body)
	want := []endpointRow{
		{Endpoint: "/v1/users/{id}", Method: "GET", APICalls: 3, AvgLatencyMS: 20.167},
		{Endpoint: "/v1/orders", Method: "POST", APICalls: 1, Errors: 1, AvgLatencyMS: 5.25},
	}
	if len(body.Endpoints) != len(want) {
		t.Fatalf("endpoints %+v, want %+v", body.Endpoints, want)
	}
	for i := range want {
		if body.Endpoints[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, body.Endpoints[i], want[i])
		}
	}
	var raw struct {
		Endpoints []map[string]any `json:"endpoints"`
	}
	mustUnmarshal(t, resp.Body, &raw)
	for _, k := range []string{"endpoint", "method", "api_calls", "errors", "avg_latency_ms"} {
		if _, ok := raw.Endpoints[0][k]; !ok {
			t.Errorf("endpoint row lacks %q: %s", k, resp.Body)
		}
	}
	// Thirty days reach back to the Mar 2 call; ties sort by endpoint.
	resp = s.Admin(t, http.MethodGet, "/api/usage/endpoints?account_id=acct_ep&days=30", "")
	mustUnmarshal(t, resp.Body, &body)
	if n := len(body.Endpoints); n != 3 || body.Endpoints[1].Endpoint != "/v1/old/{id}" || body.Endpoints[2].Endpoint != "/v1/orders" {
		t.Errorf("30 days: %+v, want users, old, orders", body.Endpoints)
	}
}

// usageCurrent is the body of GET /api/usage/current.
type usageCurrent struct {
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

// usageCounts is the comparable core of a usage answer.
type usageCounts struct {
	Plan                         string
	Calls, Overage, Denied, Left int64
}

func (u usageCurrent) counts() usageCounts {
	c := usageCounts{Plan: u.Plan, Calls: u.APICalls, Overage: u.OverageCalls, Denied: u.DeniedCalls, Left: -1}
	if u.Remaining != nil {
		c.Left = *u.Remaining
	}
	return c
}

// MustUsage reads an account's current usage with the admin token.
func (s *TestServer) MustUsage(tb testing.TB, account string) usageCurrent {
	tb.Helper()
	resp := s.Admin(tb, http.MethodGet, "/api/usage/current?account_id="+account, "")
	if resp.Status != http.StatusOK {
		tb.Fatalf("usage of %s: %d %s", account, resp.Status, resp.Body)
	}
	var u usageCurrent
	mustUnmarshal(tb, resp.Body, &u)
	return u
}
