package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/meterd/meterd/export/webhook"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetrics: the webhook series pass promlint and count what happened:
// one delivery, one failed attempt before it, one notice, none pending.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	secret, _ := webhook.NewSecret()
	rcv := newReceiver(t, secret)
	f := newFixture(t, nil)
	f.endpoint(t, rcv.srv.URL, secret)
	failed := false
	rcv.setStatus(func(string) int {
		if !failed {
			failed = true
			return 502
		}
		return 200
	})
	reg := prometheus.NewRegistry()
	d := webhook.New(webhook.Config{Store: f.l, Registerer: reg, Poll: 10 * time.Millisecond, Schedule: []time.Duration{time.Millisecond}})
	if err := f.l.PutNotices(ctx, notices(1, 1)); err != nil {
		t.Fatal(err)
	}
	d.Start()
	defer d.Close()
	waitFor(t, 5*time.Second, "the delivery", func() bool { p, _ := f.l.PendingCount(ctx); return len(rcv.accepted()) == 1 && p == 0 })
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	for name, want := range map[string]float64{"meterd_webhook_delivered_total": 1, "meterd_webhook_failed_attempts_total": 1,
		"meterd_webhook_dead_lettered_total": 0, "meterd_webhook_outbox_notices": 1, "meterd_webhook_pending_deliveries": 0} {
		if got := gauge(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
