package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// assertMatchesLedger checks that Postgres holds every ledger event exactly
// once, field for field, and that its counters, daily rows and endpoint
// rows equal the ledger's own aggregates.
func assertMatchesLedger(t *testing.T, db *testDB, l *ledger.Ledger, g *eventGen) {
	t.Helper()
	events := ledgerEvents(t, l)
	assertRows(t, db, events)
	accounts := map[string]bool{}
	for _, ev := range events {
		accounts[ev.AccountID] = true
	}
	from, to := g.start, g.start.AddDate(0, 0, g.days)
	assertUsageMaps(t, "counters", ledgerCounters(t, l, accounts), pgUsage(t, db, counterSQL))
	assertUsageMaps(t, "daily", ledgerDaily(t, l, accounts, from, to), pgUsage(t, db, dailySQL))
	assertUsageMaps(t, "endpoint", ledgerEndpoints(t, l, accounts, from, to), pgUsage(t, db, endpointSQL))
}

func ledgerEvents(t *testing.T, l *ledger.Ledger) []meter.Event {
	t.Helper()
	evs, err := l.EventsAfter(context.Background(), 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// rowOf renders an event the way eco_api_usage stores it.
func rowOf(ev *meter.Event) string {
	status, latency := "", ""
	if ev.Status != 0 {
		status = fmt.Sprint(ev.Status)
	}
	if ev.LatencyMicros > 0 {
		latency = fmt.Sprintf("%d.%03d", ev.LatencyMicros/1000, ev.LatencyMicros%1000)
	}
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s|%s|%t|%d|%d|%d", ev.ID(), ev.AccountID, ev.KeyID,
		ev.Endpoint, ev.Method, status, latency, ev.Decision, ev.Overage,
		ev.PeriodStart.Unix(), ev.Time.UnixMicro(), ev.Calls())
}

const rowSQL = `SELECT concat_ws('|', event_id, account_id, coalesce(key_id, ''), endpoint, method,
	coalesce(status_code::text, ''), coalesce(response_time_ms::text, ''), decision, overage::text,
	extract(epoch FROM period_start)::bigint, (extract(epoch FROM created_at) * 1000000)::bigint, calls)
	FROM eco_api_usage`

func assertRows(t *testing.T, db *testDB, events []meter.Event) {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), rowSQL)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got[s]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n := db.scanInt64(t, `SELECT count(*) FROM eco_api_usage`); n != int64(len(events)) {
		t.Fatalf("eco_api_usage has %d rows, ledger %d events", n, len(events))
	}
	for i := range events {
		want := rowOf(&events[i])
		if got[want] != 1 {
			t.Fatalf("row %q found %d times", want, got[want])
		}
	}
}

// usageKey names an aggregate row: account and period, day, or day and
// endpoint.
type usageKey string

const counterSQL = `SELECT account_id || '|' || extract(epoch FROM period_start)::bigint,
	api_calls, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint FROM eco_api_call_counters`

const dailySQL = `SELECT account_id || '|' || usage_date, api_calls, overage_calls, denied_calls,
	errors, client_errors, latency_sum_us, latency_count FROM eco_usage_daily`

const endpointSQL = `SELECT account_id || '|' || usage_date || '|' || endpoint || '|' || method,
	api_calls, overage_calls, denied_calls, errors, client_errors, latency_sum_us, latency_count
	FROM eco_usage_endpoint_daily`

func pgUsage(t *testing.T, db *testDB, sql string) map[usageKey]meter.Usage {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[usageKey]meter.Usage{}
	for rows.Next() {
		var k string
		var u meter.Usage
		if err := rows.Scan(&k, &u.Calls, &u.Overage, &u.Denied, &u.Errors, &u.ClientErrors,
			&u.LatencySumMicros, &u.LatencyCount); err != nil {
			t.Fatal(err)
		}
		out[usageKey(k)] = u
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ledgerCounters are the ledger's period counters with allowed calls, as
// increment_api_calls keeps them (allowed calls only).
func ledgerCounters(t *testing.T, l *ledger.Ledger, accounts map[string]bool) map[usageKey]meter.Usage {
	t.Helper()
	out := map[usageKey]meter.Usage{}
	for a := range accounts {
		cs, err := l.Counters(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Calls > 0 {
				out[usageKey(fmt.Sprintf("%s|%d", a, c.PeriodStart.Unix()))] = meter.Usage{Calls: c.Calls}
			}
		}
	}
	return out
}

func ledgerDaily(t *testing.T, l *ledger.Ledger, accounts map[string]bool, from, to time.Time) map[usageKey]meter.Usage {
	t.Helper()
	out := map[usageKey]meter.Usage{}
	for a := range accounts {
		days, err := l.DailyUsage(context.Background(), a, from, to)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range days {
			if d.Usage != (meter.Usage{}) {
				out[usageKey(a+"|"+d.Day.Format(time.DateOnly))] = d.Usage
			}
		}
	}
	return out
}

func ledgerEndpoints(t *testing.T, l *ledger.Ledger, accounts map[string]bool, from, to time.Time) map[usageKey]meter.Usage {
	t.Helper()
	out := map[usageKey]meter.Usage{}
	for a := range accounts {
		for day := from; !day.After(to); day = day.AddDate(0, 0, 1) {
			eps, err := l.EndpointUsage(context.Background(), a, day, day)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range eps {
				k := fmt.Sprintf("%s|%s|%s|%s", a, day.Format(time.DateOnly), e.Endpoint, e.Method)
				out[usageKey(k)] = e.Usage
			}
		}
	}
	return out
}

func assertUsageMaps(t *testing.T, what string, want, got map[usageKey]meter.Usage) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: ledger has no rows; the test proves nothing", what)
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s %s: postgres %+v, ledger %+v", what, k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s %s: in postgres only: %+v", what, k, got[k])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
