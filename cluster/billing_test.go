package cluster_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/meterd/meterd/cluster"
	"github.com/meterd/meterd/internal/billingtest"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

func mustPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// noCounters is a node that has counted nothing itself.
type noCounters struct{}

func (noCounters) Counters(context.Context, string) ([]meter.Counter, error) { return nil, nil }

func noPlan(string) (meter.Plan, bool) { return meter.Plan{}, false }

// TestBilling_StoreConformance runs the Postgres billing store through the
// suite the ledger passes too.
func TestBilling_StoreConformance(t *testing.T) {
	billingtest.RunStoreSuite(t, func(t *testing.T) meter.BillingStore {
		url, _ := mustDB(t)
		return cluster.NewBilling(mustPool(t, url), "n1", noCounters{}, noPlan)
	})
}

// ownCounters is a node's own exact counters.
type ownCounters []meter.Counter

func (o ownCounters) Counters(context.Context, string) ([]meter.Counter, error) { return o, nil }

// TestBilling_Counters: the billing node bills its own counters plus what
// every other node published, each period on its own; 105,000 Pro calls
// none of three nodes saw past the limit alone are 5,000 overage calls,
// 500 cents.
func TestBilling_Counters(t *testing.T) {
	ctx := context.Background()
	url, conn := mustDB(t)
	oct := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		node                           string
		period                         time.Time
		calls, overage, micros, denied int64
	}{
		{"n1", nov, 999, 999, 999_000, 0}, // the billing node's own row: never added twice
		{"n2", nov, 40_000, 0, 0, 5},      // no node passed the limit alone
		{"n3", nov, 30_000, 0, 0, 0},
		{"n2", oct, 10, 0, 0, 0},
	} {
		if _, err := conn.Exec(ctx, `INSERT INTO meterd_node_counts (node_id, account_id, period_start, calls, overage, overage_micros, denied)
VALUES ($1, 'acme', $2, $3, $4, $5, $6)`, r.node, r.period, r.calls, r.overage, r.micros, r.denied); err != nil {
			t.Fatal(err)
		}
	}
	own := ownCounters{{AccountID: "acme", PeriodStart: nov, Calls: 35_000}}
	pro := meter.Plan{Name: "pro", Limit: 100_000, OverageMicros: 1000}
	planOf := func(string) (meter.Plan, bool) { return pro, true }
	got, err := cluster.NewBilling(mustPool(t, url), "n1", own, planOf).Counters(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].PeriodStart.Equal(oct) || got[0].Calls != 10 {
		t.Fatalf("counters %+v", got)
	}
	n := got[1]
	if n.Calls != 105_000 || n.Overage != 5_000 || n.Denied != 5 {
		t.Fatalf("November %+v, want 105,000 calls and 5,000 overage", n)
	}
	if c := meter.BillableCents(n, pro); c != 500 {
		t.Fatalf("November bills %d cents, want 500", c)
	}
}

// TestPeers_ClosingPeriod: calls a node counted after its last count
// publication of a period, just before the period ended, still reach the
// billing node: the node republishes the closed period from its ledger.
func TestPeers_ClosingPeriod(t *testing.T) {
	ctx := context.Background()
	url, conn := mustDB(t)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{NodeID: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c, err := cluster.Open(cluster.Config{DatabaseURL: url, NodeID: "n2", Local: ledgerLocal{l}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Abandon)
	plans, err := meter.ParsePlans([]byte("plans:\n  pro:\n    limit: 10\n    overage_micros: 1000\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := meter.New(ctx, meter.Config{Store: l, Plans: plans, Now: now, Allowance: c.Leases(), Shared: c, Peers: c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateAccount(ctx, meter.Account{ID: "p1", Name: "p1", Plan: "pro"}); err != nil {
		t.Fatal(err)
	}
	round := c.CountRounds(m)
	call := func(n int) {
		for range n {
			if _, err := m.Track(ctx, meter.Call{AccountID: "p1", Endpoint: "/x", Method: "GET"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	call(15)
	if err := round(); err != nil { // publishes 15
		t.Fatal(err)
	}
	call(5) // never published while November is current here
	clock.Store(time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC).UnixNano())
	call(1)
	if err := round(); err != nil {
		t.Fatal(err)
	}
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if n := scanInt(t, conn, `SELECT calls FROM meterd_node_counts WHERE node_id = 'n2' AND period_start = $1`, nov); n != 20 {
		t.Fatalf("November published as %d calls, want 20", n)
	}
	// The billing node (another id) bills all 20: 10 overage calls, 1 cent.
	got, err := cluster.NewBilling(mustPool(t, url), "n1", noCounters{}, func(string) (meter.Plan, bool) {
		p, _ := plans.Get("pro")
		return p, true
	}).Counters(ctx, "p1")
	if err != nil || len(got) != 2 || got[0].Calls != 20 || got[0].Overage != 10 || got[0].OverageMicros != 10_000 {
		t.Fatalf("billing counters %+v, %v", got, err)
	}
}

// BenchmarkBilling_Charge: one charge's store writes in Postgres (compare
// ledger BenchmarkLedger_BillingCharge).
func BenchmarkBilling_Charge(b *testing.B) {
	url, _ := mustDB(b)
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	billingtest.BenchCharge(b, cluster.NewBilling(db, "n1", noCounters{}, noPlan))
}
