package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
)

// TestAccess_AccountIDNeedsServiceToken: naming an account by account_id
// on /v1/track, /v1/events and /v1/authz meters only with the service
// token. Without a token configured it is 401 and nothing is counted
// (anyone reaching the port could otherwise spend any account's quota);
// with the token configured and sent it is accepted, and without the
// token sent it is 401 again.
func TestAccess_AccountIDNeedsServiceToken(t *testing.T) {
	t.Parallel()
	const token = "svc-access-test-4b1f"
	routes := []struct {
		name, method, path, body string
		header                   map[string]string
	}{
		{"track", http.MethodPost, "/v1/track",
			`{"account_id":"acct_victim","endpoint":"/v1/x","method":"GET"}`, nil},
		{"events", http.MethodPost, "/v1/events",
			`{"events":[{"id":"e1","account_id":"acct_victim","endpoint":"/v1/x","method":"GET"}]}`, nil},
		{"authz", http.MethodGet, "/v1/authz?account_id=acct_victim", "",
			map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/x"}},
	}
	cases := []struct {
		name       string
		configured string // the server's service token ("" = none)
		sent       string // the bearer the caller sends
		status     int
		code       string // "" = any JSON error
	}{
		{"no token configured, none sent", "", "", 401, "service_token_required"},
		// The guess is taken for an API key where a bearer may be one.
		{"no token configured, a guess sent", "", "guess", 401, ""},
		{"token configured, none sent", token, "", 401, "unauthorized"},
		{"token configured, wrong one sent", token, "wrong", 401, "unauthorized"},
		{"token configured and sent", token, token, 200, ""},
	}
	for _, tc := range cases {
		for _, rt := range routes {
			t.Run(tc.name+"/"+rt.name, func(t *testing.T) {
				t.Parallel()
				s := mustGWServer(t, gwOptions{serviceToken: tc.configured})
				s.mustAccountKey("acct_victim", "free")
				header := map[string]string{}
				for k, v := range rt.header {
					header[k] = v
				}
				if tc.sent != "" {
					header["Authorization"] = "Bearer " + tc.sent
				}
				resp := gwMustDo(t, s.Client, rt.method, s.HTTP.URL+rt.path, header, rt.body)
				if resp.Status != tc.status {
					t.Fatalf("status %d, want %d: %s", resp.Status, tc.status, resp.Body)
				}
				seq, err := s.Ledger.LastSeq(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				calls := s.quota("acct_victim").Calls
				if tc.status != 200 {
					var body struct {
						Error struct{ Code string } `json:"error"`
					}
					if err := json.Unmarshal(resp.Body, &body); err != nil || body.Error.Code == "" ||
						(tc.code != "" && body.Error.Code != tc.code) {
						t.Fatalf("body %s, want JSON error %q", resp.Body, tc.code)
					}
					if seq != 0 || calls != 0 {
						t.Fatalf("a refused call was counted: %d events, %d calls", seq, calls)
					}
					return
				}
				if seq != 1 || calls != 1 {
					t.Fatalf("an accepted call: %d events, %d calls, want 1 and 1", seq, calls)
				}
			})
		}
	}
}

// TestAccess_KeysMeterWithoutServiceToken: with no service token, an API
// key still meters on all three routes; a key and an account_id together
// meter the key's account.
func TestAccess_KeysMeterWithoutServiceToken(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_keyed", "free")
	s.mustAccountKey("acct_other", "free")
	for _, rq := range []struct {
		method, path, body string
		header             map[string]string
	}{
		{http.MethodPost, "/v1/track", `{"api_key":"` + key + `","account_id":"acct_other","endpoint":"/v1/x","method":"GET"}`, nil},
		{http.MethodPost, "/v1/events", `{"events":[{"id":"k1","endpoint":"/v1/x","method":"GET"}]}`, map[string]string{"X-API-Key": key}},
		{http.MethodGet, "/v1/authz", "", map[string]string{"X-API-Key": key, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/x"}},
	} {
		if resp := gwMustDo(t, s.Client, rq.method, s.HTTP.URL+rq.path, rq.header, rq.body); resp.Status != 200 {
			t.Fatalf("%s %s: %d %s", rq.method, rq.path, resp.Status, resp.Body)
		}
	}
	if a, b := s.quota("acct_keyed").Calls, s.quota("acct_other").Calls; a != 3 || b != 0 {
		t.Fatalf("keyed account %d calls, other %d; want 3 and 0", a, b)
	}
}
