package stripe_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
)

func TestParseSchedule(t *testing.T) {
	from := time.Date(2026, 11, 15, 13, 0, 0, 0, time.UTC)
	midnight := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		spec string
		want time.Time
	}{
		{"", midnight},
		{"0 0 * * *", midnight},
		{"@daily", midnight},
		{"30 2 * * *", midnight.Add(150 * time.Minute)},
		{"0 0 1 * *", dec1},
	}
	for _, tt := range tests {
		sched, err := billing.ParseSchedule(tt.spec)
		if err != nil {
			t.Fatalf("ParseSchedule(%q): %v", tt.spec, err)
		}
		if got := sched.Next(from); !got.Equal(tt.want) {
			t.Errorf("ParseSchedule(%q).Next = %v, want %v", tt.spec, got, tt.want)
		}
	}
	for _, spec := range []string{"61 * * * *", "every day", "0 0 * *"} {
		if _, err := billing.ParseSchedule(spec); err == nil {
			t.Errorf("ParseSchedule(%q) succeeded", spec)
		}
	}
}

// The scheduler runs billing at its times until its context ends, then
// stops after the run in progress.
func TestService_Schedule(t *testing.T) {
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m, err := meter.New(context.Background(), meter.Config{Store: l})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t)
	reg := prometheus.NewRegistry()
	svc, err := billing.New(billing.Config{SecretKey: testKey, APIBase: rec.URL(), Store: l, Accounts: m,
		Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Schedule(context.Background(), "not a schedule"); err == nil {
		t.Fatal("Schedule accepted a bad spec")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, err := svc.Schedule(ctx, "@every 1s")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, reg, "meterd_billing_last_success_timestamp_seconds") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no scheduled run within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the scheduler did not stop")
	}
}
