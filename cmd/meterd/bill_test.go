package main_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// stripeStandIn answers invoice item creation like Stripe and counts the
// requests with their idempotency keys.
type stripeStandIn struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys []string
}

func newStripeStandIn(t *testing.T) *stripeStandIn {
	s := &stripeStandIn{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/invoiceitems" {
			http.Error(w, `{"error":{"type":"invalid_request_error","message":"unexpected"}}`, http.StatusNotFound)
			return
		}
		r.ParseForm()
		s.mu.Lock()
		s.keys = append(s.keys, r.Header.Get("Idempotency-Key"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"ii_standin1","object":"invoiceitem","amount":` + r.PostForm.Get("amount") + `}`))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stripeStandIn) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...)
}

// runMeterdCmd runs the binary to completion with a deadline.
func runMeterdCmd(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), "METER_ADMIN_TOKEN="+adminToken, "STRIPE_SECRET_KEY="), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func TestBill(t *testing.T) {
	dir := t.TempDir()
	plans := filepath.Join(dir, "plans.yaml")
	if err := os.WriteFile(plans, []byte("plans:\n  pro:\n    limit: 10\n    overage_micros: 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runMeterdCmd(t, nil, "bill", "--data-dir", dir, "--dry-run"); err == nil || !strings.Contains(stderr, "no ledger") {
		t.Fatalf("bill without a ledger: %v\n%s", err, stderr)
	}
	stripe := newStripeStandIn(t)
	p := startServe(t, dir, "--plans", plans, "--stripe-secret-key", "sk_test_bill", "--stripe-api-base", stripe.srv.URL,
		"--cron-secret", "cron-test-secret", "--service-token", "svc-bill-test")
	p.waitReady(t)
	if code := do(t, "POST", p.base+"/api/admin/accounts", adminToken,
		map[string]string{"id": "pro1", "name": "Pro One", "plan": "pro", "stripe_customer_id": "cus_bill"}, nil); code != 201 {
		t.Fatalf("create account: %d", code)
	}
	for range 10 + 50 {
		if code := do(t, "POST", p.base+"/v1/track", "svc-bill-test", map[string]string{"account_id": "pro1", "endpoint": "/x", "method": "GET"}, nil); code != 200 {
			t.Fatalf("track: %d", code)
		}
	}
	t.Run("OverHTTP", func(t *testing.T) {
		var rep struct {
			OK           bool  `json:"ok"`
			ChargedCents int64 `json:"charged_cents"`
		}
		if code := do(t, "POST", p.base+"/api/cron/process-overage", "cron-test-secret", nil, &rep); code != 200 || !rep.OK || rep.ChargedCents != 5 {
			t.Fatalf("process-overage: %d %+v\n%s", code, rep, p.stderr)
		}
		if keys := stripe.requests(); len(keys) != 1 || !strings.HasPrefix(keys[0], "meterd-overage-pro1-") {
			t.Fatalf("Stripe requests = %v", keys)
		}
		resp, err := http.Get(p.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var metrics bytes.Buffer
		metrics.ReadFrom(resp.Body)
		if !strings.Contains(metrics.String(), `meterd_billing_charges_total{result="sent"} 1`) ||
			!strings.Contains(metrics.String(), "meterd_billing_billed_cents_total 5") {
			t.Fatalf("billing metrics missing from /metrics")
		}
	})
	t.Run("LedgerInUse", func(t *testing.T) {
		_, stderr, err := runMeterdCmd(t, nil, "bill", "--data-dir", dir, "--plans", plans, "--dry-run")
		if err == nil || !strings.Contains(stderr, "/api/admin/billing/preview") {
			t.Fatalf("bill beside a server: %v\n%s", err, stderr)
		}
	})
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.waitExit(t, 15*time.Second); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "overage billing enabled") {
		t.Fatalf("no billing log line:\n%s", p.stderr)
	}
	t.Run("DryRunOffline", func(t *testing.T) {
		stdout, stderr, err := runMeterdCmd(t, nil, "bill", "--data-dir", dir, "--plans", plans, "--dry-run")
		if err != nil || !strings.Contains(stdout, "pro1") || !strings.Contains(stdout, "nothing_due") {
			t.Fatalf("dry run: %v\n%s\n%s", err, stdout, stderr)
		}
	})
	t.Run("NeedsKey", func(t *testing.T) {
		if _, stderr, err := runMeterdCmd(t, nil, "bill", "--data-dir", dir, "--plans", plans); err == nil || !strings.Contains(stderr, "STRIPE_SECRET_KEY") {
			t.Fatalf("bill without a key: %v\n%s", err, stderr)
		}
	})
	t.Run("Offline", func(t *testing.T) {
		stdout, stderr, err := runMeterdCmd(t, []string{"STRIPE_SECRET_KEY=sk_test_bill", "STRIPE_API_BASE=" + stripe.srv.URL},
			"bill", "--data-dir", dir, "--plans", plans, "--json")
		if err != nil || !strings.Contains(stdout, `"charged_cents": 0`) || len(stripe.requests()) != 1 {
			t.Fatalf("offline run: %v\n%s\n%s", err, stdout, stderr)
		}
	})
}

// TestBill_Notices: a billing run from the command line stores its
// billing.charge_created and billing.period_closed notices in the
// outbox, like a server's run; --webhooks=false stores none.
func TestBill_Notices(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags []string
		want  []meter.NoticeType
	}{
		{"On", nil, []meter.NoticeType{meter.NoticeChargeCreated, meter.NoticePeriodClosed}},
		{"Off", []string{"--webhooks=false"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			plans := filepath.Join(dir, "plans.yaml")
			if err := os.WriteFile(plans, []byte("plans:\n  pro:\n    limit: 10\n    overage_micros: 1000\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			// Last month's overage, written by a meter whose clock is there.
			ctx := context.Background()
			l, err := ledger.Open(filepath.Join(dir, "meter.db"), ledger.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ps, err := meter.LoadPlans(plans)
			if err != nil {
				t.Fatal(err)
			}
			then := time.Now().UTC().AddDate(0, -1, 0)
			m, err := meter.New(ctx, meter.Config{Store: l, Plans: ps, Now: func() time.Time { return then }})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.CreateAccount(ctx, meter.Account{ID: "pro1", Name: "Pro One", Plan: "pro", StripeCustomerID: "cus_bill"}); err != nil {
				t.Fatal(err)
			}
			for range 10 + 50 {
				if _, err := m.Track(ctx, meter.Call{AccountID: "pro1", Endpoint: "/x", Method: "GET"}); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()

			stripe := newStripeStandIn(t)
			stdout, stderr, err := runMeterdCmd(t, []string{"STRIPE_SECRET_KEY=sk_test_bill", "STRIPE_API_BASE=" + stripe.srv.URL},
				append([]string{"bill", "--data-dir", dir, "--plans", plans, "--json"}, c.flags...)...)
			if err != nil || len(stripe.requests()) != 1 {
				t.Fatalf("bill: %v, Stripe requests %v\n%s\n%s", err, stripe.requests(), stdout, stderr)
			}
			l, err = ledger.Open(filepath.Join(dir, "meter.db"), ledger.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ns, err := l.Notices(ctx, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []meter.NoticeType
			for _, n := range ns {
				if strings.HasPrefix(string(n.Type), "billing.") {
					got = append(got, n.Type)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("billing notices = %v, want %v", got, c.want)
			}
		})
	}
}
