package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// badCase is one request that must be refused without side effects.
type badCase struct {
	name   string
	req    request
	status int
	code   string
}

// TestBadInput_ChangesNothing sends malformed, unauthenticated and
// oversize requests; each gets a JSON error and leaves the ledger, the
// account's counter, its plan and its keys exactly as they were.
func TestBadInput_ChangesNothing(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_bad", "free")
	revoked := s.MustIssueKey(t, "acct_bad")
	if r := s.Admin(t, http.MethodDelete, "/api/admin/keys/"+revoked.ID, ""); r.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	s.Track(t, key)
	s.Track(t, key)

	cases := append(trackBadCases(key, revoked.Key), adminBadCases(key)...)
	bodies := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seq, before := s.LastSeq(t), s.MustUsage(t, "acct_bad").counts()
			resp := s.Do(t, tc.req)
			mustErrorBody(t, resp, tc.status, tc.code)
			bodies[tc.name] = string(resp.Body)
			if got := s.LastSeq(t); got != seq {
				t.Errorf("last seq %d, want %d: nothing may be recorded", got, seq)
			}
			if after := s.MustUsage(t, "acct_bad").counts(); after != before {
				t.Errorf("usage changed from %+v to %+v", before, after)
			}
		})
	}
	if bodies["unknown key"] != bodies["revoked key"] {
		t.Errorf("unknown and revoked keys answer differently:\n%s\n%s", bodies["unknown key"], bodies["revoked key"])
	}
	if u := s.MustUsage(t, "acct_bad"); u.Plan != "free" || u.APICalls != 2 || u.DeniedCalls != 0 {
		t.Errorf("usage %+v, want free with 2 calls", u)
	}
	wantCounter(t, s, "acct_bad", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 2, 0)
	if keys := s.Meter.KeysOf("acct_bad"); len(keys) != 2 {
		t.Errorf("%d keys, want 2: no key may be issued", len(keys))
	}
}

// trackBadCases are refused requests to /v1/track (and near it).
func trackBadCases(key, revokedKey string) []badCase {
	track := func(body string) request {
		return request{Method: http.MethodPost, Path: "/v1/track", Body: body}
	}
	valid := `{"api_key":"` + key + `","endpoint":"/v1/x","method":"GET"}`
	withKey := func(k string) string {
		return `{"api_key":` + quote(k) + `,"endpoint":"/v1/x","method":"GET"}`
	}
	long := strings.Repeat("k", 10<<10)
	return []badCase{
		{"malformed JSON", track(`{"api_key":"` + key + `","endpoint":`), 400, "invalid_request"},
		{"not an object", track(`[` + valid + `]`), 400, "invalid_request"},
		{"empty body", track(""), 400, "invalid_request"},
		{"two objects", track(`{}{}`), 400, "invalid_request"},
		{"valid then trailing object", track(valid + `{}`), 400, "invalid_request"},
		{"valid then garbage", track(valid + ` x`), 400, "invalid_request"},
		{"unknown field", track(`{"api_key":"` + key + `","endpoint":"/v1/x","method":"GET","plan":"enterprise"}`), 400, "invalid_request"},
		{"wrong type", track(`{"api_key":"` + key + `","endpoint":"/v1/x","method":"GET","status":"200"}`), 400, "invalid_request"},
		{"missing endpoint", track(`{"api_key":"` + key + `","method":"GET"}`), 400, "invalid_request"},
		{"missing method", track(`{"api_key":"` + key + `","endpoint":"/v1/x"}`), 400, "invalid_request"},
		{"bad method", track(`{"api_key":"` + key + `","endpoint":"/v1/x","method":"G T"}`), 400, "invalid_request"},
		{"negative latency", track(`{"api_key":"` + key + `","endpoint":"/v1/x","method":"GET","latency_ms":-1}`), 400, "invalid_request"},
		{"id too long", track(`{"api_key":"` + key + `","endpoint":"/v1/x","method":"GET","id":"` + strings.Repeat("i", 129) + `"}`), 400, "invalid_request"},
		{"missing key and account", track(`{"endpoint":"/v1/x","method":"GET"}`), 401, "missing_api_key"},
		{"unknown key", track(withKey("mk_" + strings.Repeat("A", 43))), 401, "invalid_api_key"},
		{"revoked key", track(withKey(revokedKey)), 401, "invalid_api_key"},
		{"key with CR LF", track(withKey(key + "\r\nX-Admin: yes")), 401, "invalid_api_key"},
		{"key with NUL", track(withKey(key[:20] + "\x00" + key[20:])), 401, "invalid_api_key"},
		{"key of 10 KB", track(withKey(long)), 401, "invalid_api_key"},
		{"header key of 10 KB", request{Method: http.MethodPost, Path: "/v1/track",
			Body: `{"endpoint":"/v1/x","method":"GET"}`, Header: map[string]string{"X-API-Key": long}}, 401, "invalid_api_key"},
		{"account_id without the service token", track(`{"account_id":"acct_bad","endpoint":"/v1/x","method":"GET"}`), 401, "service_token_required"},
		{"body over 1 MiB", track(`{"api_key":"` + key + `","endpoint":"/v1/x","method":"GET","id":"` +
			strings.Repeat("b", 1<<20) + `"}`), 413, "body_too_large"},
		{"headers of 40 KB", request{Method: http.MethodPost, Path: "/v1/track", Body: valid,
			Header: map[string]string{"X-Padding": strings.Repeat("h", 40<<10)}}, 431, "headers_too_large"},
		{"wrong method", request{Method: http.MethodGet, Path: "/v1/track"}, 405, "method_not_allowed"},
		{"wrong method with body", request{Method: http.MethodPut, Path: "/v1/track", Body: valid}, 405, "method_not_allowed"},
		{"unknown route", request{Method: http.MethodPost, Path: "/v1/trak", Body: valid}, 404, "not_found"},
	}
}

// adminBadCases try to move the account to enterprise without the right
// admin token.
func adminBadCases(key string) []badCase {
	patch := func(auth string) request {
		h := map[string]string{}
		if auth != "" {
			h["Authorization"] = auth
		}
		return request{Method: http.MethodPatch, Path: "/api/admin/accounts/acct_bad",
			Body: `{"plan":"enterprise"}`, Header: h}
	}
	tok := testAdminToken
	return []badCase{
		{"admin token missing", patch(""), 401, "unauthorized"},
		{"admin token wrong", patch("Bearer mat_not-the-admin-token-00000000000"), 401, "unauthorized"},
		{"admin token prefix", patch("Bearer " + tok[:len(tok)-1]), 401, "unauthorized"},
		{"admin token too long", patch("Bearer " + tok + "0"), 401, "unauthorized"},
		{"admin token short", patch("Bearer mat"), 401, "unauthorized"},
		{"lowercase bearer wrong token", patch("bearer " + strings.ToUpper(tok)), 401, "unauthorized"},
		{"basic scheme", patch("Basic " + tok), 401, "unauthorized"},
		{"bearer without token", patch("Bearer "), 401, "unauthorized"},
		{"API key as admin token", patch("Bearer " + key), 401, "unauthorized"},
		{"issue key without admin", request{Method: http.MethodPost, Path: "/api/admin/accounts/acct_bad/keys",
			Header: map[string]string{"Authorization": "Bearer " + key}}, 401, "unauthorized"},
	}
}

// quote returns s as a JSON string literal, control characters escaped.
func quote(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// apiError is the "error" member of every error body.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// mustErrorBody checks resp is a JSON error with status and code, and a
// message, and returns it.
func mustErrorBody(tb testing.TB, resp response, status int, code string) apiError {
	tb.Helper()
	if resp.Status != status {
		tb.Fatalf("status %d, want %d: %s", resp.Status, status, resp.Body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type %q, want application/json", ct)
	}
	var body struct {
		Error *apiError `json:"error"`
	}
	mustUnmarshal(tb, resp.Body, &body)
	if body.Error == nil || body.Error.Code != code || body.Error.Message == "" {
		tb.Fatalf("error body %s: want code %q and a message", resp.Body, code)
	}
	return *body.Error
}
