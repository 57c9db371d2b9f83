package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/export/postgres"
)

func TestIncrementAPICalls_Concurrent(t *testing.T) {
	db := mustDatabase(t)
	const sessions, calls = 16, 100
	period := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		totals []int64
	)
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A connection of its own: 16 real sessions, not a pool's few.
			conn, err := pgx.Connect(context.Background(), db.URL)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(context.Background())
			for i := 0; i < calls; i++ {
				var total int64
				err := conn.QueryRow(context.Background(),
					`SELECT increment_api_calls('acct_hot', $1, 2)`, period).Scan(&total)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				totals = append(totals, total)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Each call saw its own increment on top of all earlier ones: the
	// returned totals are exactly 2, 4, ..., 2*sessions*calls.
	slices.Sort(totals)
	for i, got := range totals {
		if want := int64(2 * (i + 1)); got != want {
			t.Fatalf("totals[%d] = %d, want %d", i, got, want)
		}
	}
	final := db.scanInt64(t, `SELECT api_calls FROM eco_api_call_counters WHERE account_id = 'acct_hot' AND period_start = $1`, period)
	if final != 2*sessions*calls {
		t.Fatalf("final total = %d, want %d", final, 2*sessions*calls)
	}
}

func TestAggregateDailyUsage(t *testing.T) {
	db := mustDatabase(t)
	l := mustOpenLedger(t)
	g := newEventGen(7, 4, 5)
	appendEvents(t, l, g, 2500)
	e, _ := mustExporter(t, l, postgres.Config{DatabaseURL: db.URL, BatchSize: 400})
	if _, err := e.ExportOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	maintained := snapshotAggregates(t, db)

	t.Run("RebuildIsIdentical", func(t *testing.T) {
		rebuildDays(t, db, g)
		assertSameSnapshot(t, maintained, snapshotAggregates(t, db))
	})
	t.Run("RepairsDamage", func(t *testing.T) {
		day := g.start.AddDate(0, 0, 1)
		mustExecPG(t, db, `UPDATE eco_usage_daily SET api_calls = api_calls + 7 WHERE usage_date = $1`, day)
		mustExecPG(t, db, `DELETE FROM eco_usage_endpoint_daily WHERE usage_date = $1 AND method = 'GET'`, day)
		mustExecPG(t, db, `INSERT INTO eco_usage_daily (account_id, usage_date, api_calls) VALUES ('ghost', $1, 1)`, day)
		rebuildDays(t, db, g)
		rebuildDays(t, db, g) // idempotent
		assertSameSnapshot(t, maintained, snapshotAggregates(t, db))
	})
	t.Run("EmptyDay", func(t *testing.T) {
		if n := db.scanInt64(t, `SELECT aggregate_daily_usage('2001-01-01')`); n != 0 {
			t.Fatalf("rows for an empty day = %d", n)
		}
	})
}

// TestAggregateDailyUsage_DuringExport rebuilds days over and over while
// the exporter is adding deltas: the function's lock must keep every delta.
func TestAggregateDailyUsage_DuringExport(t *testing.T) {
	db := mustDatabase(t)
	l := mustOpenLedger(t)
	g := newEventGen(8, 3, 2)
	appendEvents(t, l, g, 4000)
	e, _ := mustExporter(t, l, postgres.Config{DatabaseURL: db.URL, BatchSize: 100})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				rebuildDays(t, db, g)
			}
		}
	}()
	_, err := e.ExportOnce(context.Background())
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	assertMatchesLedger(t, db, l, g)
}

func rebuildDays(t *testing.T, db *testDB, g *eventGen) {
	t.Helper()
	for d := 0; d <= g.days; d++ {
		day := g.start.AddDate(0, 0, d)
		mustExecPG(t, db, `SELECT aggregate_daily_usage($1)`, day)
	}
}

func mustExecPG(t *testing.T, db *testDB, sql string, args ...any) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Errorf("%s: %v", sql, err)
	}
}

// aggregateSnapshot is the aggregate tables as text, row by row.
type aggregateSnapshot map[string][]string

func snapshotAggregates(t *testing.T, db *testDB) aggregateSnapshot {
	t.Helper()
	queries := map[string]string{
		"daily":    `SELECT t::text FROM eco_usage_daily t ORDER BY account_id, usage_date`,
		"endpoint": `SELECT t::text FROM eco_usage_endpoint_daily t ORDER BY account_id, usage_date, endpoint, method`,
		"counters": `SELECT account_id || ' ' || period_start || ' ' || api_calls FROM eco_api_call_counters ORDER BY 1`,
	}
	snap := aggregateSnapshot{}
	for name, q := range queries {
		rows, err := db.Pool.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) == 0 {
			t.Fatalf("snapshot %s: no rows", name)
		}
		snap[name] = lines
	}
	return snap
}

func assertSameSnapshot(t *testing.T, want, got aggregateSnapshot) {
	t.Helper()
	for name := range want {
		if !slices.Equal(want[name], got[name]) {
			t.Fatalf("%s differs:\nwant %d rows %v\n got %d rows %v", name,
				len(want[name]), head(want[name]), len(got[name]), head(got[name]))
		}
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }
