package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

const allowedOrigin = "https://app.example.com"

// consoleServer is a meterd API with portal tokens and CORS on, over a
// real ledger, with the meter's clock injected.
type consoleServer struct {
	clock *testClock
	meter *meter.Meter
	http  *httptest.Server
}

func openConsoleServer(t *testing.T) *consoleServer {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	m, err := meter.New(context.Background(), meter.Config{Store: l, Plans: meter.DefaultPlans(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{Meter: m, AdminToken: testAdminToken, Usage: l,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		CORSOrigins: []string{allowedOrigin}, PortalKey: []byte("k3y-0f-at-least-thirty-two-bytes!!"),
		PortalTTL: time.Hour, PortalMaxTTL: 2 * time.Hour})
	hs := httptest.NewServer(api.Handler())
	t.Cleanup(func() { hs.Close(); l.Close() })
	return &consoleServer{clock: clock, meter: m, http: hs}
}

func (s *consoleServer) send(t *testing.T, method, path, bearer, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.http.URL+path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (s *consoleServer) account(t *testing.T, id, plan string) {
	t.Helper()
	if _, err := s.meter.CreateAccount(context.Background(), meter.Account{ID: id, Name: id, Plan: plan}); err != nil {
		t.Fatal(err)
	}
}

func (s *consoleServer) portalToken(t *testing.T, account, body string) (int, string) {
	t.Helper()
	resp, b := s.send(t, http.MethodPost, "/api/admin/accounts/"+account+"/portal-token", testAdminToken, body, nil)
	var out struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	json.Unmarshal(b, &out)
	return resp.StatusCode, out.Token
}

func TestPortalToken(t *testing.T) {
	s := openConsoleServer(t)
	s.account(t, "acct_a", "pro")
	s.account(t, "acct_b", "free")
	if _, err := s.meter.Track(context.Background(), meter.Call{AccountID: "acct_a", Endpoint: "/v1/x", Method: "GET"}); err != nil {
		t.Fatal(err)
	}
	st, tok := s.portalToken(t, "acct_a", "")
	if st != http.StatusCreated || !strings.HasPrefix(tok, "mpt_") {
		t.Fatalf("mint: %d %q", st, tok)
	}
	t.Run("ReadsItsAccount", func(t *testing.T) {
		for _, p := range []string{"/api/usage/current", "/api/usage/history?days=3", "/api/usage/endpoints", "/api/usage/current?account_id=acct_a"} {
			resp, b := s.send(t, http.MethodGet, p, tok, "", nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"account_id":"acct_a"`) {
				t.Errorf("GET %s: %d %s", p, resp.StatusCode, b)
			}
		}
	})
	t.Run("OtherAccountForbidden", func(t *testing.T) {
		resp, _ := s.send(t, http.MethodGet, "/api/usage/current?account_id=acct_b", tok, "", nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("other account: %d, want 403", resp.StatusCode)
		}
	})
	t.Run("NotAnAdminOrServiceCredential", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{{"GET", "/api/admin/accounts/acct_a"},
			{"POST", "/api/admin/accounts/acct_a/portal-token"}, {"GET", "/api/admin/analytics/overview"}} {
			resp, _ := s.send(t, c.method, c.path, tok, "", nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with a portal token: %d, want 401", c.method, c.path, resp.StatusCode)
			}
		}
		resp, _ := s.send(t, http.MethodPost, "/v1/track", tok, `{"api_key":"`+tok+`","endpoint":"/x","method":"GET"}`, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("track with a portal token as key: %d, want 401", resp.StatusCode)
		}
	})
	t.Run("Tampered", func(t *testing.T) {
		payload, sig, _ := strings.Cut(strings.TrimPrefix(tok, "mpt_"), ".")
		other := s.mintOther(t, "acct_b")
		_, otherSig, _ := strings.Cut(strings.TrimPrefix(other, "mpt_"), ".")
		for name, bad := range map[string]string{"swapped signature": "mpt_" + payload + "." + otherSig,
			"no signature": "mpt_" + payload, "flipped": "mpt_" + payload + "." + strings.ToUpper(sig[:4]) + sig[4:],
			"garbage": "mpt_!!!.???"} {
			resp, b := s.send(t, http.MethodGet, "/api/usage/current", bad, "", nil)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "invalid_portal_token") {
				t.Errorf("%s: %d %s", name, resp.StatusCode, b)
			}
		}
	})
	t.Run("TTL", func(t *testing.T) {
		if st, _ := s.portalToken(t, "acct_a", `{"ttl_seconds":7201}`); st != http.StatusBadRequest {
			t.Errorf("ttl over the maximum: %d, want 400", st)
		}
		if st, _ := s.portalToken(t, "nobody", ""); st != http.StatusNotFound {
			t.Errorf("unknown account: %d, want 404", st)
		}
		_, short := s.portalToken(t, "acct_a", `{"ttl_seconds":60}`)
		s.clock.Advance(59 * time.Second)
		if resp, _ := s.send(t, http.MethodGet, "/api/usage/current", short, "", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("before expiry: %d", resp.StatusCode)
		}
		s.clock.Advance(time.Second)
		resp, b := s.send(t, http.MethodGet, "/api/usage/current", short, "", nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "portal_token_expired") {
			t.Errorf("at expiry: %d %s", resp.StatusCode, b)
		}
	})
}

func (s *consoleServer) mintOther(t *testing.T, account string) string {
	t.Helper()
	_, tok := s.portalToken(t, account, "")
	return tok
}

func TestCORS_UsageEndpoints(t *testing.T) {
	s := openConsoleServer(t)
	s.account(t, "acct_a", "pro")
	_, tok := s.portalToken(t, "acct_a", "")
	preflight := func(origin, method string) *http.Response {
		resp, _ := s.send(t, http.MethodOptions, "/api/usage/current", "", "", map[string]string{"Origin": origin,
			"Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization"})
		return resp
	}
	t.Run("AllowedOrigin", func(t *testing.T) {
		resp := preflight(allowedOrigin, "GET")
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != allowedOrigin ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || h.Get("Access-Control-Allow-Methods") != "GET" {
			t.Errorf("preflight: %d %v", resp.StatusCode, h)
		}
		get, _ := s.send(t, http.MethodGet, "/api/usage/current", tok, "", map[string]string{"Origin": allowedOrigin})
		if get.StatusCode != http.StatusOK || get.Header.Get("Access-Control-Allow-Origin") != allowedOrigin {
			t.Errorf("GET: %d, Allow-Origin %q", get.StatusCode, get.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("OtherOrigin", func(t *testing.T) {
		for _, o := range []string{"https://evil.example.com", "null", allowedOrigin + ".evil.com", "http://app.example.com"} {
			resp := preflight(o, "GET")
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("preflight from %s: %d, Allow-Origin %q", o, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
		get, _ := s.send(t, http.MethodGet, "/api/usage/current", tok, "", map[string]string{"Origin": "https://evil.example.com"})
		if get.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET from another origin carries Allow-Origin %q", get.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("OnlyGETAndNoCredentials", func(t *testing.T) {
		if resp := preflight(allowedOrigin, "DELETE"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("preflight for DELETE: %d", resp.StatusCode)
		}
		if resp := preflight(allowedOrigin, "GET"); resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Error("preflight allows credentials")
		}
		// Admin routes get no CORS at all.
		resp, _ := s.send(t, http.MethodOptions, "/api/admin/analytics/overview", "", "", map[string]string{"Origin": allowedOrigin})
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("admin route answers CORS: %d %v", resp.StatusCode, resp.Header)
		}
	})
}

func TestAnalyticsHistory_ByPlan(t *testing.T) {
	s := openConsoleServer(t)
	s.account(t, "acct_p", "pro")
	s.account(t, "acct_f", "free")
	call := func(acct string, n int) {
		for range n {
			if _, err := s.meter.Track(context.Background(), meter.Call{AccountID: acct, Endpoint: "/v1/x", Method: "GET"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	call("acct_p", 3)
	call("acct_f", 2)
	s.clock.Advance(24 * time.Hour)
	call("acct_p", 1)
	// A plan change moves later calls to the new plan; earlier ones stay.
	if _, err := s.meter.UpdateAccount(context.Background(), "acct_f", meter.AccountPatch{Plan: ptr("pro")}); err != nil {
		t.Fatal(err)
	}
	call("acct_f", 4)
	resp, b := s.send(t, http.MethodGet, "/api/admin/analytics/history?days=3", testAdminToken, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var h struct {
		Dates []string           `json:"dates"`
		Total []int64            `json:"total"`
		Plans map[string][]int64 `json:"plans"`
		Other []int64            `json:"other"`
	}
	mustUnmarshal(t, b, &h)
	want := struct {
		dates            []string
		total, pro, free []int64
	}{[]string{"2026-03-09", "2026-03-10", "2026-03-11"},
		[]int64{0, 5, 5}, []int64{0, 3, 5}, []int64{0, 2, 0}}
	if strings.Join(h.Dates, ",") != strings.Join(want.dates, ",") || !equal(h.Total, want.total) ||
		!equal(h.Plans["pro"], want.pro) || !equal(h.Plans["free"], want.free) || !equal(h.Other, []int64{0, 0, 0}) {
		t.Errorf("history %s, want dates %v total %v pro %v free %v", b, want.dates, want.total, want.pro, want.free)
	}
	if resp, _ := s.send(t, http.MethodGet, "/api/admin/analytics/history?days=0", testAdminToken, "", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("days=0: %d", resp.StatusCode)
	}
	if resp, _ := s.send(t, http.MethodGet, "/api/admin/analytics/history", "", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAdminHealth(t *testing.T) {
	s := openConsoleServer(t)
	resp, b := s.send(t, http.MethodGet, "/api/admin/health", testAdminToken, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	obj := jsonKeys(t, b)
	requireKeys(t, obj, "ready", "checks", "billing", "as_of")
	if !strings.Contains(string(obj["billing"]), `"enabled":false`) {
		t.Errorf("billing without a biller: %s", obj["billing"])
	}
	if resp, _ := s.send(t, http.MethodGet, "/api/admin/health", "", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
}

func TestAnalyticsUsers_Search(t *testing.T) {
	s := openConsoleServer(t)
	for _, a := range []meter.Account{{ID: "acct_1", Name: "Globex Corp", Email: "ops@globex.test"},
		{ID: "acct_2", Name: "Initech", Email: "bill@initech.test"}, {ID: "globe_3", Name: "Other", Email: "x@y.test"}} {
		if _, err := s.meter.CreateAccount(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	for q, want := range map[string]int{"GLOB": 2, "initech.test": 1, "nobody": 0, "": 3} {
		_, b := s.send(t, http.MethodGet, "/api/admin/analytics/users?sort=name&q="+q, testAdminToken, "", nil)
		var page struct {
			Users []struct {
				AccountID string `json:"account_id"`
			} `json:"users"`
		}
		mustUnmarshal(t, b, &page)
		if len(page.Users) != want {
			t.Errorf("q=%q: %d accounts, want %d (%s)", q, len(page.Users), want, b)
		}
	}
}
