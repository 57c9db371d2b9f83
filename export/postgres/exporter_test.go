package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meterd/meterd/export/postgres"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestExporter_RoundTrip(t *testing.T) {
	db := mustDatabase(t)
	l := mustOpenLedger(t)
	g := newEventGen(1, 5, 7)
	appendEvents(t, l, g, 3000)
	e, reg := mustExporter(t, l, postgres.Config{DatabaseURL: db.URL, BatchSize: 700})
	ctx := context.Background()

	n, err := e.ExportOnce(ctx)
	if err != nil || n != 3000 {
		t.Fatalf("ExportOnce = %d, %v; want 3000, nil", n, err)
	}
	assertMatchesLedger(t, db, l, g)
	assertBacklog(t, e, 0)
	if got := metricValue(t, reg, "meterd_export_rows_total"); got != 3000 {
		t.Fatalf("rows_total = %v", got)
	}
	if got := metricValue(t, reg, "meterd_export_batches_total"); got != 5 {
		t.Fatalf("batches_total = %v, want 5", got)
	}

	t.Run("NothingLeft", func(t *testing.T) {
		if n, err := e.ExportOnce(ctx); err != nil || n != 0 {
			t.Fatalf("second ExportOnce = %d, %v", n, err)
		}
	})
	t.Run("MoreLater", func(t *testing.T) {
		appendEvents(t, l, g, 123)
		if n, err := e.ExportOnce(ctx); err != nil || n != 123 {
			t.Fatalf("ExportOnce = %d, %v", n, err)
		}
		assertMatchesLedger(t, db, l, g)
	})
}

func TestExporter_CrashAfterCommit(t *testing.T) {
	db := mustDatabase(t)
	l := mustOpenLedger(t)
	path := l.Path()
	g := newEventGen(2, 4, 5)
	appendEvents(t, l, g, 2000)
	ctx := context.Background()

	errCrash := errors.New("crash between commit and cursor advance")
	e1, _ := mustExporter(t, l, postgres.Config{DatabaseURL: db.URL, BatchSize: 500})
	commits := 0
	e1.SetAfterCommitFn(func() error {
		if commits++; commits == 2 {
			return errCrash
		}
		return nil
	})
	n, err := e1.ExportOnce(ctx)
	if !errors.Is(err, errCrash) || n != 500 {
		t.Fatalf("ExportOnce = %d, %v; want 500 and the crash", n, err)
	}
	// Batch 2 committed; with two batches in flight, batch 3 may have too.
	committed := db.scanInt64(t, `SELECT count(*) FROM eco_api_usage`)
	if committed != 1000 && committed != 1500 {
		t.Fatalf("%d rows committed before the crash, want 1000 or 1500", committed)
	}

	// Restart: the process dies, the ledger is reopened, a new exporter
	// starts from the durable cursor (500) and replays the second batch.
	e1.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustReopenLedger(t, path)
	if cur, err := l.Cursor(ctx, postgres.DefaultCursorName); err != nil || cur != 500 {
		t.Fatalf("cursor after crash = %d, %v; want 500", cur, err)
	}
	e2, reg := mustExporter(t, l, postgres.Config{DatabaseURL: db.URL, BatchSize: 500})
	if n, err := e2.ExportOnce(ctx); err != nil || n != 1500 {
		t.Fatalf("ExportOnce after restart = %d, %v; want 1500", n, err)
	}
	assertMatchesLedger(t, db, l, g)
	if dup := metricValue(t, reg, "meterd_export_duplicate_rows_total"); dup != float64(committed-500) {
		t.Fatalf("duplicate rows = %v, want the %d replayed", dup, committed-500)
	}
	if rows := metricValue(t, reg, "meterd_export_rows_total"); rows != float64(2000-committed) {
		t.Fatalf("rows inserted after restart = %v, want %d", rows, 2000-committed)
	}
}

func TestExporter_WriteBatch(t *testing.T) {
	db := mustDatabase(t)
	l := mustOpenLedger(t)
	g := newEventGen(3, 3, 3)
	appendEvents(t, l, g, 600)
	events := ledgerEvents(t, l)
	e, _ := mustExporter(t, l, postgres.Config{DatabaseURL: db.URL})
	ctx := context.Background()

	t.Run("DuplicatesInBatch", func(t *testing.T) {
		// The same events twice in one batch: DISTINCT ON keeps one of
		// each, so the aggregate upserts never touch a row twice.
		batch := append(append([]meter.Event{}, events[:300]...), events[:300]...)
		if n, err := e.WriteBatch(ctx, batch); err != nil || n != 300 {
			t.Fatalf("WriteBatch = %d, %v; want 300", n, err)
		}
	})
	t.Run("ReplayChangesNothing", func(t *testing.T) {
		before := snapshotAggregates(t, db)
		if n, err := e.WriteBatch(ctx, events[:300]); err != nil || n != 0 {
			t.Fatalf("replay = %d, %v; want 0", n, err)
		}
		assertSameSnapshot(t, before, snapshotAggregates(t, db))
	})
	t.Run("Overlapping", func(t *testing.T) {
		// The writer may have coalesced a few denials: fewer than 600 records.
		if n, err := e.WriteBatch(ctx, events[200:]); err != nil || n != int64(len(events)-300) {
			t.Fatalf("WriteBatch = %d, %v; want %d new", n, err, len(events)-300)
		}
		assertMatchesLedger(t, db, l, g)
	})
	t.Run("BadText", func(t *testing.T) {
		// NUL and invalid UTF-8 would fail the batch on every retry.
		ev := events[0]
		ev.Seq, ev.AccountID, ev.Endpoint = 1<<40, "acct\x00x", "/v1/\xff"
		if n, err := e.WriteBatch(ctx, []meter.Event{ev}); err != nil || n != 1 {
			t.Fatalf("WriteBatch = %d, %v", n, err)
		}
	})
}

func TestExporter_Run(t *testing.T) {
	db := mustDatabase(t)
	l := mustOpenLedger(t)
	g := newEventGen(4, 3, 4)
	e, _ := mustExporter(t, l, postgres.Config{
		DatabaseURL: db.URL, BatchSize: 1000, FlushInterval: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	t.Run("PartialBatchAfterFlushInterval", func(t *testing.T) {
		appendEvents(t, l, g, 10)
		waitBacklogZero(t, e, 3*time.Second)
	})
	t.Run("Burst", func(t *testing.T) {
		appendEvents(t, l, g, 4500)
		waitBacklogZero(t, e, 10*time.Second)
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	assertMatchesLedger(t, db, l, g)
}

func TestExporter_New(t *testing.T) {
	l := mustOpenLedger(t)
	if _, err := postgres.New(l, postgres.Config{}, nil, nil); !errors.Is(err, postgres.ErrNoDatabaseURL) {
		t.Fatalf("err = %v, want ErrNoDatabaseURL", err)
	}
	t.Run("PostgresDown", func(t *testing.T) {
		// New must not connect: meterd starts while Postgres is down.
		e, err := postgres.New(l, postgres.Config{DatabaseURL: "postgres://u@127.0.0.1:1/db?connect_timeout=1"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		appendEvents(t, l, newEventGen(5, 1, 1), 3)
		if _, err := e.ExportOnce(context.Background()); err == nil {
			t.Fatal("ExportOnce to a closed port succeeded")
		}
		st, err := e.Status(context.Background())
		if err != nil || st.BacklogEvents != 3 || st.LastError == "" {
			t.Fatalf("Status = %+v, %v", st, err)
		}
	})
}

func TestExporter_Metrics(t *testing.T) {
	l := mustOpenLedger(t)
	reg := prometheus.NewRegistry()
	e, err := postgres.New(l, postgres.Config{DatabaseURL: "postgres://u@127.0.0.1:1/db"}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, name := range []string{"meterd_export_batches_total", "meterd_export_rows_total",
		"meterd_export_errors_total", "meterd_export_backlog_events", "meterd_export_lag_seconds",
		"meterd_export_batch_duration_seconds"} {
		metricValue(t, reg, name)
	}
	if _, err := postgres.New(l, postgres.Config{DatabaseURL: "postgres://u@127.0.0.1:1/db"}, nil, reg); err == nil {
		t.Fatal("registering twice on one registry succeeded")
	}
}

func TestExporter_Backlog(t *testing.T) {
	l := mustOpenLedger(t)
	g := newEventGen(6, 1, 1)
	now := g.start.Add(48 * time.Hour)
	e, _ := mustExporter(t, l, postgres.Config{
		DatabaseURL: "postgres://u@127.0.0.1:1/db", MaxBacklog: 5,
		Now: func() time.Time { return now },
	})
	assertBacklog(t, e, 0)
	appendEvents(t, l, g, 6)
	events := ledgerEvents(t, l)
	n, lag, err := e.Backlog(context.Background())
	if err != nil || n != 6 || lag != now.Sub(events[0].Time) {
		t.Fatalf("Backlog = %d, %v, %v; want 6, %v", n, lag, err, now.Sub(events[0].Time))
	}
	st, err := e.Status(context.Background())
	if err != nil || !st.OverBound {
		t.Fatalf("Status = %+v, %v; want OverBound", st, err)
	}
}

func assertBacklog(t *testing.T, e *postgres.Exporter, want uint64) {
	t.Helper()
	n, lag, err := e.Backlog(context.Background())
	if err != nil || n != want || (want == 0 && lag != 0) {
		t.Fatalf("Backlog = %d, %v, %v; want %d", n, lag, err, want)
	}
}

func waitBacklogZero(t *testing.T, e *postgres.Exporter, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, _, err := e.Backlog(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog still %d after %v", n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue returns the value of a label-less metric (a histogram's
// sample count), failing if it is not registered.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
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
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
