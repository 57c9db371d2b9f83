package stripe_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

var errCrash = errors.New("simulated crash")

func TestService_Run(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	rep := f.run()
	if rep.Charges != 1 || rep.ChargedCents != 500 || !rep.OK() {
		t.Fatalf("report = %s, want one 500-cent charge", rep.String())
	}
	posts := f.rec.posts()
	if len(posts) != 1 {
		t.Fatalf("%d POSTs, want 1", len(posts))
	}
	got := posts[0].Form
	want := map[string]string{
		"customer": "cus_pro1", "amount": "500", "currency": "usd",
		"description":   "API overage: 5,000 calls, 2026-11-01 – 2026-12-01",
		"period[start]": strconv.FormatInt(nov1.Unix(), 10), "period[end]": strconv.FormatInt(dec1.Unix()-1, 10),
		"metadata[meterd_account_id]": "pro1", "metadata[meterd_period_start]": "2026-11-01T00:00:00Z",
		"metadata[meterd_seq]": "1", "metadata[meterd_calls_covered]": "5000", "metadata[meterd_calls]": "5000",
	}
	for k, v := range want {
		if got.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, got.Get(k), v)
		}
	}
	if posts[0].Key != meter.IntentKey("pro1", nov1, 1) {
		t.Errorf("Idempotency-Key = %q", posts[0].Key)
	}
	intents := f.intents()
	items := f.rec.itemsOf("cus_pro1")
	if len(intents) != 1 || intents[0].Status != meter.IntentDone || intents[0].StripeID != items[0].ID {
		t.Fatalf("intents = %+v, items = %+v", intents, items)
	}
	t.Run("NothingMoreDue", func(t *testing.T) {
		f.calls("pro1", 9) // 0.9 cent: carried, not billed
		if rep := f.run(); rep.Charges != 0 || len(f.rec.posts()) != 1 {
			t.Fatalf("second run charged: %s", rep.String())
		}
	})
	t.Run("Metrics", func(t *testing.T) {
		if v := metricValue(t, f.reg, "meterd_billing_charges_total", "result", "sent"); v != 1 {
			t.Errorf("charges_total{sent} = %v, want 1", v)
		}
		if problems, err := testutil.GatherAndLint(f.reg); err != nil || len(problems) > 0 {
			t.Fatalf("promlint: %v %+v", err, problems)
		}
		n, err := testutil.GatherAndCount(f.reg, "meterd_billing_billed_cents_total",
			"meterd_billing_intents_pending", "meterd_billing_last_success_timestamp_seconds")
		if err != nil || n != 3 {
			t.Fatalf("gathered %d series, %v", n, err)
		}
	})
}

func TestService_RetryAfterStripeFailure(t *testing.T) {
	tests := []struct {
		name  string
		fault fault
		// created is whether the failed attempt created the item.
		created bool
	}{
		{"Status500", fault500, false},
		{"ConnectionDropped", faultDrop, true},
		{"Timeout", faultHang, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
			f.svc, f.reg = f.service(billing.Config{RequestTimeout: 300 * time.Millisecond})
			f.account("pro1", "pro", "cus_pro1")
			f.calls("pro1", 10+5000)
			f.rec.failNext(tt.fault)
			rep := f.run()
			if rep.OK() || rep.Charges != 0 || len(rep.Lines) != 1 || rep.Lines[0].Status != "pending" {
				t.Fatalf("first run: %s %+v", rep.String(), rep.Lines)
			}
			if n := len(f.rec.itemsOf("cus_pro1")); (n == 1) != tt.created {
				t.Fatalf("first attempt created %d items", n)
			}
			if it := f.intents(); len(it) != 1 || it[0].Status != meter.IntentSent || it[0].LastError == "" {
				t.Fatalf("intent after failure = %+v", it)
			}
			f.clock.Add(time.Hour)
			rep = f.run()
			if !rep.OK() || rep.Charges != 1 || rep.ChargedCents != 500 {
				t.Fatalf("retry: %s %+v", rep.String(), rep.Lines)
			}
			posts, items := f.rec.posts(), f.rec.itemsOf("cus_pro1")
			if len(posts) != 2 || posts[0].Key != posts[1].Key || posts[0].Form.Encode() != posts[1].Form.Encode() {
				t.Fatalf("posts = %+v, want two identical requests with one key", posts)
			}
			intents := f.intents()
			if len(items) != 1 || items[0].Amount != 500 || intents[0].StripeID != items[0].ID || intents[0].Attempts != 2 {
				t.Fatalf("items = %+v, intents = %+v", items, intents)
			}
			if st := f.billed("pro1"); st.BilledCents != 500 || st.BilledCalls != 5000 {
				t.Fatalf("billed = %+v", st)
			}
		})
	}
}

func TestService_CrashAfterStripeAccepted(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	billing.SetAfterStripeAcceptFn(f.svc, func() error { return errCrash })
	if _, err := f.svc.Run(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("Run = %v, want the crash", err)
	}
	if n := len(f.rec.itemsOf("cus_pro1")); n != 1 {
		t.Fatalf("%d items after the crash, want 1", n)
	}
	f.restart()
	t.Run("LeaseOfTheDeadRun", func(t *testing.T) {
		if _, err := f.svc.Run(context.Background()); !errors.Is(err, meter.ErrBillingBusy) {
			t.Fatalf("Run = %v, want ErrBillingBusy until the lease expires", err)
		}
	})
	f.clock.Add(billing.DefaultLeaseTTL)
	rep := f.run()
	items := f.rec.itemsOf("cus_pro1")
	if len(items) != 1 || rep.ChargedCents != 500 {
		t.Fatalf("after restart: %d items, report %s", len(items), rep.String())
	}
	posts := f.rec.posts()
	if len(posts) != 2 || posts[1].Key != posts[0].Key {
		t.Fatalf("posts = %+v, want the same key retried", posts)
	}
	if it := f.intents(); len(it) != 1 || it[0].Status != meter.IntentDone || it[0].StripeID != items[0].ID {
		t.Fatalf("intents = %+v", it)
	}
	f.clock.Add(time.Hour)
	if rep := f.run(); rep.Charges != 0 || len(f.rec.posts()) != 2 {
		t.Fatalf("a later run charged again: %s", rep.String())
	}
	if st := f.billed("pro1"); st.BilledCents != 500 {
		t.Fatalf("billed = %d, want 500", st.BilledCents)
	}
}

func TestService_ConcurrentRuns(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	other, _ := f.service(billing.Config{})
	f.rec.holdPosts()
	type result struct {
		rep billing.Report
		err error
	}
	first := make(chan result, 1)
	go func() {
		rep, err := f.svc.Run(context.Background())
		first <- result{rep, err}
	}()
	select {
	case <-f.rec.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first run never reached Stripe")
	}
	for name, svc := range map[string]*billing.Service{"OtherService": other, "SameService": f.svc} {
		if _, err := svc.Run(context.Background()); !errors.Is(err, meter.ErrBillingBusy) {
			t.Fatalf("%s: concurrent Run = %v, want ErrBillingBusy", name, err)
		}
	}
	f.rec.releasePosts()
	res := <-first
	if res.err != nil || res.rep.ChargedCents != 500 {
		t.Fatalf("first run: %v %s", res.err, res.rep.String())
	}
	if rep, err := other.Run(context.Background()); err != nil || rep.Charges != 0 {
		t.Fatalf("run after the first: %v %s", err, rep.String())
	}
	if posts, items := f.rec.posts(), f.rec.itemsOf("cus_pro1"); len(posts) != 1 || len(items) != 1 {
		t.Fatalf("%d posts, %d items; want one charge", len(posts), len(items))
	}
}

// metricValue gathers reg and returns the value of the series name with
// the given label pairs (counter or gauge), failing if it is missing.
func metricValue(tb testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m.GetLabel(), labels) {
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	tb.Fatalf("no series %s%v", name, labels)
	return 0
}

func hasLabels(got []*dto.LabelPair, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		found := false
		for _, lp := range got {
			found = found || (lp.GetName() == want[i] && lp.GetValue() == want[i+1])
		}
		if !found {
			return false
		}
	}
	return true
}
