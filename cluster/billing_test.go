package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/meterd/meterd/cluster"
	"github.com/meterd/meterd/internal/billingtest"
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
