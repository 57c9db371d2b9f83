package cluster_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// BenchmarkDecision measures one hard-limited decision in steady state on
// a single node (no cluster) and on a cluster node deciding from leases:
// Postgres round trips per 1,000 decisions and the per-decision p50, p99
// and p99.9. The meter is async, so the ledger's fsync (the same in both)
// does not hide what the lease adds.
//
//	go test ./cluster/ -run '^$' -bench Decision -benchtime 20000x -count 4
func BenchmarkDecision(b *testing.B) {
	b.Run("single", func(b *testing.B) {
		l, err := ledger.Open(filepath.Join(b.TempDir(), "meter.db"), ledger.Options{NodeID: "solo"})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		m, err := meter.New(context.Background(), meter.Config{Store: l, Plans: testPlans(b), Async: true})
		if err != nil {
			b.Fatal(err)
		}
		runDecisions(b, m, nil)
	})
	b.Run("cluster", func(b *testing.B) {
		dbURL, _ := mustDB(b)
		n := mustNode(b, dbURL, "n1", "", "")
		// An async meter of its own over the node's ledger and leases.
		m, err := meter.New(context.Background(), meter.Config{Store: n.ledger, Plans: testPlans(b),
			Async: true, Allowance: n.cluster.Leases(), Shared: n.cluster})
		if err != nil {
			b.Fatal(err)
		}
		runDecisions(b, m, n.cluster.Leases().RoundTrips)
	})
}

func runDecisions(b *testing.B, m *meter.Meter, trips func() int64) {
	ctx := context.Background()
	if _, err := m.CreateAccount(ctx, meter.Account{ID: "big", Name: "b", Plan: "bighard"}); err != nil {
		b.Fatal(err)
	}
	call := meter.Call{AccountID: "big", Endpoint: "/x", Method: "GET"}
	for i := 0; i < 3000; i++ { // past the first chunks: steady state
		m.Track(ctx, call)
	}
	var before int64
	if trips != nil {
		before = trips()
	}
	took := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		res, err := m.Track(ctx, call)
		took[i] = time.Since(t0)
		if err != nil || !res.Allowed {
			b.Fatalf("call %d: %+v %v", i, res, err)
		}
	}
	b.StopTimer()
	slices.Sort(took)
	q := func(p float64) float64 { return float64(took[int(p*float64(len(took)-1))].Nanoseconds()) }
	b.ReportMetric(q(0.50), "p50-ns")
	b.ReportMetric(q(0.99), "p99-ns")
	b.ReportMetric(q(0.999), "p99.9-ns")
	if trips != nil {
		b.ReportMetric(float64(trips()-before)*1000/float64(b.N), "pg-trips/1000")
	}
}
