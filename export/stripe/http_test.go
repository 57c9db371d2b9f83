package stripe_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/httpapi"
)

const (
	adminToken = "admin-token-for-tests"
	cronSecret = "cron-secret-for-tests"
)

// newAPI serves the fixture's meter with billing registered after New,
// as cmd/meterd does; biller nil means billing is disabled.
func newAPI(tb testing.TB, f *fixture, biller httpapi.Biller) *httptest.Server {
	tb.Helper()
	api := httpapi.New(httpapi.Config{Meter: f.meter, AdminToken: adminToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	api.RegisterBilling(biller, cronSecret)
	srv := httptest.NewServer(api.Handler())
	tb.Cleanup(srv.Close)
	return srv
}

// call sends a request and decodes the JSON answer into a map.
func call(tb testing.TB, srv *httptest.Server, method, path, token string) (int, map[string]any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		tb.Fatalf("%s %s: %d, body is not JSON: %v", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestHTTP_Billing(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	srv := newAPI(t, f, f.svc)
	steps := []struct {
		name, method, path, token string
		status                    int
		code                      string // error code, or "" for success
		charged                   float64
	}{
		{"NoToken", "POST", "/api/cron/process-overage", "", 401, "unauthorized", 0},
		{"WrongToken", "POST", "/api/cron/process-overage", "nope", 401, "unauthorized", 0},
		{"WrongMethod", "GET", "/api/cron/process-overage", cronSecret, 405, "method_not_allowed", 0},
		{"PreviewNeedsAdmin", "GET", "/api/admin/billing/preview", cronSecret, 401, "unauthorized", 0},
		{"Preview", "GET", "/api/admin/billing/preview", adminToken, 200, "", 500},
		{"BadPeriod", "POST", "/api/cron/process-overage?period=11-2026", cronSecret, 400, "invalid_request", 0},
		{"CronSecret", "POST", "/api/cron/process-overage", cronSecret, 200, "", 500},
		{"AdminTokenNothingDue", "POST", "/api/cron/process-overage", adminToken, 200, "", 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			status, body := call(t, srv, s.method, s.path, s.token)
			if status != s.status || errorCode(body) != s.code {
				t.Fatalf("%s %s = %d %v, want %d %q", s.method, s.path, status, body, s.status, s.code)
			}
			if s.code == "" && (body["charged_cents"] != s.charged || body["ok"] != true) {
				t.Fatalf("body = %v, want charged_cents %v", body, s.charged)
			}
		})
	}
	if n := len(f.rec.itemsOf("cus_pro1")); n != 1 {
		t.Fatalf("%d invoice items, want 1", n)
	}
	t.Run("Charges", func(t *testing.T) {
		status, body := call(t, srv, "GET", "/api/admin/billing/charges?period=2026-11", adminToken)
		charges, _ := body["charges"].([]any)
		if status != 200 || len(charges) != 1 || body["billed_cents"] != 500.0 || body["period"] != "2026-11" {
			t.Fatalf("charges = %d %v", status, body)
		}
		c := charges[0].(map[string]any)
		if c["status"] != "done" || c["stripe_id"] != f.rec.itemsOf("cus_pro1")[0].ID || c["amount_cents"] != 500.0 {
			t.Fatalf("charge = %v", c)
		}
		if status, body := call(t, srv, "GET", "/api/admin/billing/charges", adminToken); status != 200 || body["period"] != "2026-11" {
			t.Fatalf("default period: %d %v", status, body)
		}
		if status, body := call(t, srv, "GET", "/api/admin/billing/charges?period=x", adminToken); status != 400 {
			t.Fatalf("bad period: %d %v", status, body)
		}
	})
	t.Run("Busy", func(t *testing.T) {
		f.calls("pro1", 100)
		f.rec.holdPosts()
		done := make(chan error, 1)
		go func() {
			_, err := f.svc.Run(context.Background())
			done <- err
		}()
		<-f.rec.entered
		status, body := call(t, srv, "POST", "/api/cron/process-overage", cronSecret)
		f.rec.releasePosts()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if status != 409 || errorCode(body) != "billing_in_progress" {
			t.Fatalf("concurrent POST = %d %v, want 409", status, body)
		}
	})
}

func TestHTTP_BillingDisabled(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	srv := newAPI(t, f, nil)
	tests := []struct {
		method, path, token string
		status              int
		code                string
	}{
		{"POST", "/api/cron/process-overage", "", 401, "unauthorized"},
		{"POST", "/api/cron/process-overage", cronSecret, 503, "billing_disabled"},
		{"GET", "/api/admin/billing/preview", adminToken, 503, "billing_disabled"},
		{"GET", "/api/admin/billing/charges", adminToken, 503, "billing_disabled"},
	}
	for _, tt := range tests {
		status, body := call(t, srv, tt.method, tt.path, tt.token)
		if status != tt.status || errorCode(body) != tt.code {
			t.Fatalf("%s %s = %d %v, want %d %s", tt.method, tt.path, status, body, tt.status, tt.code)
		}
	}
}

// TestHTTP_OverviewBilledSplit: the admin overview splits the period's
// overage revenue into what the done intents billed and what is still to
// bill.
func TestHTTP_OverviewBilledSplit(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	f.sync()
	api := httpapi.New(httpapi.Config{Meter: f.meter, AdminToken: adminToken, Usage: f.led, Billed: f.led,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	overview := func() (float64, float64, float64) {
		t.Helper()
		status, body := call(t, srv, "GET", "/api/admin/analytics/overview", adminToken)
		if status != 200 {
			t.Fatalf("overview: %d %v", status, body)
		}
		return body["overage_revenue_cents"].(float64), body["overage_billed_cents"].(float64), body["overage_unbilled_cents"].(float64)
	}
	if rev, billed, unbilled := overview(); rev != 500 || billed != 0 || unbilled != 500 {
		t.Fatalf("before billing: revenue %v billed %v unbilled %v", rev, billed, unbilled)
	}
	f.run()
	if rev, billed, unbilled := overview(); rev != 500 || billed != 500 || unbilled != 0 {
		t.Fatalf("after billing: revenue %v billed %v unbilled %v", rev, billed, unbilled)
	}
}

// dry_run accepts what strconv.ParseBool accepts, and yes/no; anything
// else is a 400, and none of it charges.
func TestHTTP_DryRunValues(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	srv := newAPI(t, f, f.svc)
	for _, v := range []string{"TRUE", "yes", "t", "1", "true", "True", "YES"} {
		status, body := call(t, srv, "POST", "/api/cron/process-overage?dry_run="+v, cronSecret)
		if status != 200 || body["dry_run"] != true || body["charged_cents"] != 500.0 {
			t.Fatalf("dry_run=%s: %d %v", v, status, body)
		}
	}
	for _, v := range []string{"maybe", "2", "tru", "%20"} {
		status, body := call(t, srv, "POST", "/api/cron/process-overage?dry_run="+v, cronSecret)
		if status != 400 || errorCode(body) != "invalid_request" {
			t.Fatalf("dry_run=%s: %d %v", v, status, body)
		}
	}
	if posts := f.rec.posts(); len(posts) != 0 {
		t.Fatalf("a dry run charged: %+v", posts)
	}
	if status, body := call(t, srv, "POST", "/api/cron/process-overage?dry_run=false", cronSecret); status != 200 || body["charged_cents"] != 500.0 {
		t.Fatalf("dry_run=false: %d %v", status, body)
	}
}

// Without a Stripe key, previews work and list every Pro account's money
// at stake, a Pro account without a Stripe customer included (flagged);
// what needs Stripe answers 503.
func TestHTTP_PreviewWithoutStripeKey(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("nocus", "pro", "")
	f.calls("nocus", 10+4000)
	svc, err := billing.New(billing.Config{Store: f.led, Accounts: f.meter, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := newAPI(t, f, svc)
	status, body := call(t, srv, "GET", "/api/admin/billing/preview", adminToken)
	lines, _ := body["accounts"].([]any)
	if status != 200 || len(lines) != 1 || body["unbillable_cents"] != 400.0 {
		t.Fatalf("preview: %d %v", status, body)
	}
	l := lines[0].(map[string]any)
	if l["account_id"] != "nocus" || l["no_customer"] != true || l["due_cents"] != 400.0 ||
		l["billable_cents"] != 400.0 || l["projected_cents"].(float64) < 400 {
		t.Fatalf("line: %v", l)
	}
	for _, path := range []string{"/api/cron/process-overage", "/api/admin/billing/reconcile?period=2026-11"} {
		method := "POST"
		if strings.HasPrefix(path, "/api/admin") {
			method = "GET"
		}
		if status, body := call(t, srv, method, path, adminToken); status != 503 || errorCode(body) != "billing_disabled" {
			t.Fatalf("%s: %d %v", path, status, body)
		}
	}
}

func TestHTTP_Reconcile(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	srv := newAPI(t, f, f.svc)
	f.run()
	status, body := call(t, srv, "GET", "/api/admin/billing/reconcile?period=2026-11", adminToken)
	lines, _ := body["accounts"].([]any)
	if status != 200 || body["differences"] != 0.0 || len(lines) != 1 {
		t.Fatalf("reconcile: %d %v", status, body)
	}
	l := lines[0].(map[string]any)
	if l["ledger_billed_cents"] != 500.0 || l["stripe_billed_cents"] != 500.0 || l["due_cents"] != 0.0 || l["flagged"] != false {
		t.Fatalf("line: %v", l)
	}
	if status, _ := call(t, srv, "GET", "/api/admin/billing/reconcile?period=nov", adminToken); status != 400 {
		t.Fatalf("bad period: %d", status)
	}
}
