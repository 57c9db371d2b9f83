package meter_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

func TestLeaseChunk(t *testing.T) {
	for _, tc := range []struct {
		name           string
		limit, granted int64
		nodes          int
		want           int64
	}{
		{"FreshFreePlanThreeNodes", 1000, 0, 3, 83},
		{"FreshFreePlanOneNode", 1000, 0, 1, 250},
		{"LargePlanCapped", 10_000_000, 0, 3, meter.MaxLeaseChunk},
		{"HalfUsed", 1000, 500, 3, 41},
		{"TailIsSingleCalls", 1000, 990, 3, 1},
		{"LastCall", 1000, 999, 3, 1},
		{"NothingLeft", 1000, 1000, 3, 0},
		{"OverGrantedNeverNegative", 1000, 1200, 3, 0},
		{"ZeroNodesCountsAsOne", 1000, 0, 0, 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := meter.LeaseChunk(tc.limit, tc.granted, tc.nodes); got != tc.want {
				t.Fatalf("LeaseChunk(%d, %d, %d) = %d, want %d", tc.limit, tc.granted, tc.nodes, got, tc.want)
			}
		})
	}
	t.Run("ShrinksMonotonically", func(t *testing.T) {
		// Draining a limit chunk by chunk never asks for more than remains,
		// and the chunks never grow.
		var granted, last int64 = 0, meter.MaxLeaseChunk + 1
		for granted < 100_000 {
			c := meter.LeaseChunk(100_000, granted, 3)
			if c <= 0 || c > 100_000-granted || c > last {
				t.Fatalf("at %d granted: chunk %d after %d", granted, c, last)
			}
			granted, last = granted+c, c
		}
	})
}

// budget is an Allowance with a fixed number of admissions, standing in for
// the cluster's lease store; down makes it unreachable.
type budget struct {
	left  atomic.Int64
	down  atomic.Bool
	given atomic.Int64
	taken atomic.Int64
}

func (b *budget) Take(ctx context.Context, account string, p meter.Period, limit int64) (bool, error) {
	if b.down.Load() {
		return false, meter.ErrQuotaUnavailable
	}
	if b.left.Add(-1) < 0 {
		b.left.Add(1)
		return false, nil
	}
	b.taken.Add(1)
	return true, nil
}

func (b *budget) Give(account string, p meter.Period, n int64) {
	b.given.Add(n)
	b.left.Add(n)
}

func mustOpenClusterMeter(tb testing.TB, a meter.Allowance) (*meter.Meter, *ledger.Ledger) {
	tb.Helper()
	l, err := ledger.Open(filepath.Join(tb.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	clk := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	m, err := meter.New(context.Background(), meter.Config{Store: l, Now: clk.Now, Allowance: a})
	if err != nil {
		tb.Fatal(err)
	}
	return m, l
}

func TestMeter_Allowance(t *testing.T) {
	t.Run("HardPlanAdmitsOnlyWhatIsGranted", func(t *testing.T) {
		b := &budget{}
		b.left.Store(300) // the rest of the 1,000 went to other nodes
		m, _ := mustOpenClusterMeter(t, b)
		mustAccount(t, m, "free1", "free")
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < 50; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					res, err := track(m, "free1")
					if err != nil {
						t.Error(err)
						return
					}
					if res.Allowed {
						allowed.Add(1)
					} else if res.Remaining != 0 {
						t.Errorf("denied call reports %d remaining", res.Remaining)
					}
				}
			}()
		}
		wg.Wait()
		q, _ := m.Quota("free1")
		if allowed.Load() != 300 || q.Calls != 300 || q.Denied != 200 {
			t.Fatalf("allowed %d, quota calls %d denied %d; want 300/300/200", allowed.Load(), q.Calls, q.Denied)
		}
	})

	t.Run("UnavailableCountsNothing", func(t *testing.T) {
		b := &budget{}
		b.down.Store(true)
		m, l := mustOpenClusterMeter(t, b)
		mustAccount(t, m, "free1", "free")
		if _, err := track(m, "free1"); !errors.Is(err, meter.ErrQuotaUnavailable) {
			t.Fatalf("err = %v, want ErrQuotaUnavailable", err)
		}
		if _, err := m.Reserve(context.Background(), meter.Call{AccountID: "free1", Endpoint: "/x", Method: "GET"}); !errors.Is(err, meter.ErrQuotaUnavailable) {
			t.Fatalf("Reserve err = %v, want ErrQuotaUnavailable", err)
		}
		q, _ := m.Quota("free1")
		seq, _ := l.LastSeq(context.Background())
		if q.Calls != 0 || q.Denied != 0 || seq != 0 {
			t.Fatalf("calls %d denied %d events %d; want nothing counted", q.Calls, q.Denied, seq)
		}
	})

	t.Run("SoftAndUnlimitedPlansNeverAsk", func(t *testing.T) {
		b := &budget{}
		b.down.Store(true)
		m, _ := mustOpenClusterMeter(t, b)
		mustAccount(t, m, "pro1", "pro")
		mustAccount(t, m, "ent1", "enterprise")
		for _, id := range []string{"pro1", "ent1"} {
			if res, err := track(m, id); err != nil || !res.Allowed {
				t.Fatalf("%s: %+v %v", id, res, err)
			}
		}
		if b.taken.Load() != 0 {
			t.Fatalf("took %d admissions for plans without a hard limit", b.taken.Load())
		}
	})

	t.Run("UndoneCallGivesItBack", func(t *testing.T) {
		b := &budget{}
		b.left.Store(10)
		m, l := mustOpenClusterMeter(t, b)
		mustAccount(t, m, "free1", "free")
		r, err := m.Reserve(context.Background(), meter.Call{AccountID: "free1", Endpoint: "/x", Method: "GET"})
		if err != nil || !r.Result().Allowed {
			t.Fatalf("reserve: %v", err)
		}
		l.Close() // the record fails: the call is undone
		if err := r.Finish(context.Background(), 200, time.Millisecond); err == nil {
			t.Fatal("Finish on a closed ledger succeeded")
		}
		if b.given.Load() != 1 || b.left.Load() != 10 {
			t.Fatalf("given back %d, left %d; want 1 and 10", b.given.Load(), b.left.Load())
		}
	})
}

func TestClusterOverage(t *testing.T) {
	pro := meter.Plan{Name: "pro", Limit: 1000, OverageMicros: 1000}
	free := meter.Plan{Name: "free", Limit: 1000, Hard: true}
	for _, tc := range []struct {
		name              string
		plan              meter.Plan
		in                meter.Counter
		overage, unpriced int64
		cents             int64
	}{
		{"no node past the limit alone", pro, meter.Counter{Calls: 6000}, 5000, 5000, 500},
		{"stamps complete already", pro, meter.Counter{Calls: 6000, Overage: 5000, OverageMicros: 5_000_000}, 5000, 0, 500},
		{"some stamped at an older price", pro, meter.Counter{Calls: 6000, Overage: 1000, OverageMicros: 2_000_000}, 5000, 4000, 600},
		{"under the limit", pro, meter.Counter{Calls: 900}, 0, 0, 0},
		{"hard plans have no overage", free, meter.Counter{Calls: 1000}, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := meter.ClusterOverage(tc.in, tc.plan)
			if got.Overage != tc.overage || got.UnpricedOverage != tc.unpriced || meter.BillableCents(got, tc.plan) != tc.cents {
				t.Fatalf("got %+v (%d cents), want overage %d, unpriced %d, %d cents", got, meter.BillableCents(got, tc.plan), tc.overage, tc.unpriced, tc.cents)
			}
		})
	}
}
