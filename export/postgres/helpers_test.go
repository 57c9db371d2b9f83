package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/meterd/meterd/export/postgres"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/meterd/meterd/migrations"
	"github.com/prometheus/client_golang/prometheus"
)

// testDB is one test's own schema in the test database, migrated.
type testDB struct {
	URL  string // search_path points at the schema
	Pool *pgxpool.Pool
}

// mustDatabase creates a schema for this test only, applies the migrations
// to it, and drops it when the test ends.
func mustDatabase(tb testing.TB) *testDB {
	tb.Helper()
	base := os.Getenv("METER_TEST_DATABASE_URL")
	if base == "" {
		tb.Skip("METER_TEST_DATABASE_URL not set: skipping Postgres integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to METER_TEST_DATABASE_URL: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "meterd_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close(context.Background())
	})
	dbURL := withSearchPath(tb, base, schema)
	if err := migrations.Up(ctx, dbURL); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return &testDB{URL: dbURL, Pool: pool}
}

func withSearchPath(tb testing.TB, base, schema string) string {
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// scanInt64 runs a one-value query.
func (db *testDB) scanInt64(tb testing.TB, sql string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return n
}

// mustOpenLedger opens a real ledger in a temporary directory.
func mustOpenLedger(tb testing.TB) *ledger.Ledger {
	tb.Helper()
	return mustReopenLedger(tb, filepath.Join(tb.TempDir(), "meterd.db"))
}

func mustReopenLedger(tb testing.TB, path string) *ledger.Ledger {
	tb.Helper()
	l, err := ledger.Open(path, ledger.Options{NodeID: "node1"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// mustExporter returns an exporter with a private registry.
func mustExporter(tb testing.TB, log meter.EventLog, cfg postgres.Config) (*postgres.Exporter, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	e, err := postgres.New(log, cfg, nil, reg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.Close)
	return e, reg
}

// eventGen makes plausible random calls: a few accounts, endpoints and
// methods, every decision and status class, latencies with and without a
// value, spread over several UTC days including their edges.
type eventGen struct {
	rng      *mrand.Rand
	accounts int
	start    time.Time
	days     int
	// step, when set, makes times advance by step per event (with a little
	// jitter), as a live meter records them; otherwise times are random.
	step time.Duration
	n    int
}

func newEventGen(seed uint64, accounts, days int) *eventGen {
	return &eventGen{
		rng:      mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		accounts: accounts,
		// Spans a month boundary, so events fall in two periods.
		start: time.Date(2026, 1, 29, 0, 0, 0, 0, time.UTC),
		days:  days,
	}
}

var (
	genEndpoints = []string{"/v1/users", "/v1/users/{id}", "/v1/orders", "/v1/orders/{id}/items", "/health"}
	genMethods   = []string{"GET", "POST", "DELETE"}
	genStatuses  = []int{0, 200, 200, 200, 201, 204, 400, 404, 429, 500, 503}
)

// newLiveEventGen spreads total events evenly over the days, in time order
// give or take a second, like the ledger of a running meter.
func newLiveEventGen(seed uint64, accounts, days, total int) *eventGen {
	g := newEventGen(seed, accounts, days)
	g.step = time.Duration(int64(days) * int64(24*time.Hour) / int64(total))
	return g
}

func (g *eventGen) next() *meter.Event {
	r := g.rng
	t := g.start.Add(time.Duration(r.Int64N(int64(g.days) * int64(24*time.Hour))))
	if g.step > 0 {
		t = g.start.Add(time.Duration(g.n)*g.step + time.Duration(r.Int64N(int64(time.Second))))
	} else if r.IntN(20) == 0 { // the last millisecond of a day
		t = t.Truncate(24 * time.Hour).Add(24*time.Hour - time.Millisecond)
	}
	g.n++
	t = t.Truncate(time.Microsecond)
	ev := &meter.Event{
		Time:        t,
		PeriodStart: meter.PeriodAt(time.Time{}, t).Start,
		AccountID:   fmt.Sprintf("acct_%d", r.IntN(g.accounts)),
		KeyID:       fmt.Sprintf("key_%d", r.IntN(3)),
		Endpoint:    genEndpoints[r.IntN(len(genEndpoints))],
		Method:      genMethods[r.IntN(len(genMethods))],
		Status:      genStatuses[r.IntN(len(genStatuses))],
		Decision:    meter.Allowed,
	}
	if r.IntN(4) > 0 {
		ev.LatencyMicros = 1 + r.Int64N(2_000_000)
	}
	switch r.IntN(10) {
	case 0:
		ev.Decision, ev.Status = meter.Denied, 429
		// A third are a flood's denials as the ledger coalesces them; the
		// rest say Coalesced 1 (one call), which the writer leaves alone,
		// so n appended events are n records, as the tests count them.
		ev.Coalesced = 1
		if r.IntN(3) == 0 {
			ev.Coalesced = 2 + r.Int64N(50)
		}
	case 1, 2:
		ev.Overage = true
	}
	if r.IntN(10) == 0 {
		ev.KeyID = ""
	}
	return ev
}

// appendEvents records n generated events in the ledger and waits until
// all are durable. Most are appended without waiting, as a busy meter does.
func appendEvents(tb testing.TB, l *ledger.Ledger, g *eventGen, n int) {
	tb.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		ev := g.next()
		wait := i == n-1 || i%4096 == 4095
		for {
			err := l.Append(ctx, ev, wait)
			if err == nil {
				break
			}
			if !errors.Is(err, meter.ErrOverloaded) {
				tb.Fatalf("append: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
