package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meterd/meterd/export/postgres"
	"github.com/meterd/meterd/meter"
)

// TestExporter_CoalescedDenials: a ledger record standing for N denied
// calls (ledger/coalesce.go) is one eco_api_usage row with calls = N, and
// counts N in denied_calls — through the exporter's deltas and through
// aggregate_daily_usage() — exactly once across a crash between the
// Postgres commit and the cursor's advance.
func TestExporter_CoalescedDenials(t *testing.T) {
	db := mustDatabase(t)
	l := mustOpenLedger(t)
	path := l.Path()
	ctx := context.Background()
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	period := meter.PeriodAt(time.Time{}, day).Start
	event := func(d meter.Decision, n int64, at time.Duration) *meter.Event {
		return &meter.Event{Time: day.Add(at), PeriodStart: period, AccountID: "acct_flood", KeyID: "key_1",
			Endpoint: "/v1/things", Method: "GET", Status: 429, Decision: d, Coalesced: n}
	}
	var appended []*meter.Event
	for i := range 10 {
		ev := event(meter.Allowed, 0, time.Duration(i)*time.Minute)
		ev.Status = 200
		appended = append(appended, ev)
	}
	appended = append(appended, event(meter.Denied, 300, time.Hour), event(meter.Denied, 200, 2*time.Hour))
	for i := range 50 { // single denials; the writer may coalesce them too
		appended = append(appended, event(meter.Denied, 0, 3*time.Hour+time.Duration(i)*time.Second))
	}
	const denied = 300 + 200 + 50
	for _, ev := range appended {
		if err := l.Append(ctx, ev, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	records := len(ledgerEvents(t, l))

	errCrash := errors.New("crash between commit and cursor advance")
	e1, _ := mustExporter(t, l, postgres.Config{DatabaseURL: db.URL, BatchSize: 8, Parallel: 1})
	e1.SetAfterCommitFn(func() error { return errCrash })
	if _, err := e1.ExportOnce(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("ExportOnce = %v, want the crash", err)
	}
	e1.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustReopenLedger(t, path)
	e2, _ := mustExporter(t, l, postgres.Config{DatabaseURL: db.URL, BatchSize: 8})
	if _, err := e2.ExportOnce(ctx); err != nil {
		t.Fatal(err)
	}

	check := func(when string) {
		t.Helper()
		rows := db.scanInt64(t, `SELECT count(*) FROM eco_api_usage`)
		sumDenied := db.scanInt64(t, `SELECT coalesce(sum(calls), 0) FROM eco_api_usage WHERE decision = 'denied'`)
		allowed := db.scanInt64(t, `SELECT coalesce(sum(calls), 0) FROM eco_api_usage WHERE decision = 'allowed'`)
		daily := db.scanInt64(t, `SELECT coalesce(sum(denied_calls), 0) FROM eco_usage_daily WHERE account_id = 'acct_flood' AND usage_date = $1`, day)
		endpoint := db.scanInt64(t, `SELECT coalesce(sum(denied_calls), 0) FROM eco_usage_endpoint_daily WHERE account_id = 'acct_flood'`)
		calls := db.scanInt64(t, `SELECT coalesce(sum(api_calls), 0) FROM eco_usage_daily WHERE account_id = 'acct_flood'`)
		counter := db.scanInt64(t, `SELECT coalesce(sum(api_calls), 0) FROM eco_api_call_counters WHERE account_id = 'acct_flood'`)
		if rows != int64(records) || sumDenied != denied || daily != denied || endpoint != denied ||
			allowed != 10 || calls != 10 || counter != 10 {
			t.Fatalf("%s: %d rows (ledger %d records), sum(calls) denied %d allowed %d; eco_usage_daily denied %d calls %d; endpoint denied %d; counter %d; want %d denied, 10 allowed",
				when, rows, records, sumDenied, allowed, daily, calls, endpoint, counter, denied)
		}
	}
	check("exported")
	if _, err := db.Pool.Exec(ctx, `SELECT aggregate_daily_usage($1::date)`, day); err != nil {
		t.Fatal(err)
	}
	check("rebuilt by aggregate_daily_usage")
	assertRows(t, db, ledgerEvents(t, l))
}
