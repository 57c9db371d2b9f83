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

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/meter"
)

// withGrowth adds a custom soft plan with Pro's limit and another rate.
const withGrowth = "plans:\n  growth:\n    limit: 100000\n    overage_micros: 2500\n    monthly_price_cents: 4900\n"

// TestService_PlanChangeBillsOverageOnce is the business case: a Pro
// account runs up 3,000 overage calls (billed 300¢ by a daily run), then
// 2,000 more, then changes plan. Whatever the new plan, the customer is
// billed exactly 500¢, and usage/current, the overview, the preview and
// the charges all say 500¢.
func TestService_PlanChangeBillsOverageOnce(t *testing.T) {
	cases := []struct {
		name, patch string
		// plan in force right after the patch, and pending one
		inForce, pending string
		mrr              float64
	}{
		{"FreeAtPeriodEnd", `{"plan":"free"}`, "pro", "free", 2900},
		{"FreeNow", `{"plan":"free","effective":"now"}`, "free", "", 0},
		{"Enterprise", `{"plan":"enterprise","monthly_price_cents":50000}`, "enterprise", "", 50000},
		{"CustomSoftPlan", `{"plan":"growth"}`, "growth", "", 4900},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, withGrowth, nov1.Add(time.Hour))
			srv := newFullAPI(t, f)
			f.account("pro1", "pro", "cus_pro1")
			f.calls("pro1", 103000)
			f.clock.Set(nov1.AddDate(0, 0, 9))
			if rep := f.run(); rep.ChargedCents != 300 {
				t.Fatalf("first run: %s", rep.String())
			}
			f.clock.Set(nov1.AddDate(0, 0, 10).Add(13 * time.Hour))
			f.calls("pro1", 2000)

			status, body := send(t, srv, "PATCH", "/api/admin/accounts/pro1", tc.patch)
			if status != 200 || body["plan"] != tc.inForce || str(body["pending_plan"]) != tc.pending {
				t.Fatalf("patch: %d %v", status, body)
			}
			if tc.inForce == "free" {
				// Free is in force: further calls are denied, not billed.
				f.calls("pro1", 10)
				if q, _ := f.meter.Quota("pro1"); q.Denied != 10 || q.Overage != 5000 {
					t.Fatalf("after the downgrade: %+v", q)
				}
			}

			_, usage := call(t, srv, "GET", "/api/usage/current?account_id=pro1", adminToken)
			if usage["overage_cost_cents"] != 500.0 || usage["overage_calls"] != 5000.0 {
				t.Fatalf("usage/current: %v", usage)
			}
			_, ov := call(t, srv, "GET", "/api/admin/analytics/overview", adminToken)
			if ov["overage_revenue_cents"] != 500.0 || ov["overage_billed_cents"] != 300.0 || ov["mrr_cents"] != tc.mrr {
				t.Fatalf("overview: %v", ov)
			}
			prev, err := f.svc.Preview(context.Background())
			if err != nil || len(prev.Lines) != 1 || prev.Lines[0].BillableCents != 500 || prev.Lines[0].ChargeCents != 200 {
				t.Fatalf("preview: %v %+v", err, prev.Lines)
			}

			f.clock.Set(dec1.Add(meter.DefaultBillingGrace))
			if rep := f.run(); !rep.OK() || rep.ChargedCents != 200 {
				t.Fatalf("closing run: %s %+v", rep.String(), rep.Lines)
			}
			f.clock.Add(24 * time.Hour)
			if rep := f.run(); rep.Charges != 0 {
				t.Fatalf("later run charged: %s", rep.String())
			}
			if got := sumAmounts(f.rec.itemsOf("cus_pro1")); got != 500 {
				t.Fatalf("billed %d cents, want 500", got)
			}
			_, charges := call(t, srv, "GET", "/api/admin/billing/charges?period=2026-11", adminToken)
			if charges["billed_cents"] != 500.0 {
				t.Fatalf("charges: %v", charges)
			}
			if st := f.billed("pro1"); !st.Final || st.BilledCents != 500 {
				t.Fatalf("state: %+v", st)
			}
			if tc.pending != "" { // the scheduled downgrade is in force now
				if a, _ := f.meter.Account("pro1"); a.Plan != tc.pending || a.PendingPlan != "" {
					t.Fatalf("after the period: %+v", a)
				}
			}
		})
	}
}

// newFullAPI serves the fixture's meter with usage, overview and billing.
func newFullAPI(tb testing.TB, f *fixture) *httptest.Server {
	tb.Helper()
	api := httpapi.New(httpapi.Config{Meter: f.meter, AdminToken: adminToken, Usage: f.led, Billed: f.led,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	api.RegisterBilling(f.svc, cronSecret)
	srv := httptest.NewServer(api.Handler())
	tb.Cleanup(srv.Close)
	return srv
}

// send is call with a JSON body, as the admin.
func send(tb testing.TB, srv *httptest.Server, method, path, body string) (int, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		tb.Fatalf("%s %s: %d, body is not JSON: %v", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
