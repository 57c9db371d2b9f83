package ledger_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// BenchmarkLedger_Append measures durable appends (fsync on, each caller
// waiting for the commit that holds its event) from 64 producers, the
// shape of 64 concurrent HTTP connections.
func BenchmarkLedger_Append(b *testing.B) {
	for _, accounts := range []int64{1, 64, 1000, 100000} {
		b.Run(fmt.Sprintf("accounts=%d", accounts), func(b *testing.B) { benchAppend(b, accounts) })
	}
}

func benchAppend(b *testing.B, accounts int64) {
	var obs commitCounter
	l, err := ledger.Open(filepath.Join(b.TempDir(), "meter.db"), ledger.Options{Observer: &obs})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var n atomic.Int64
	b.SetParallelism(32) // 32 × GOMAXPROCS(2) = 64 producers
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			ev := newEvent(fmt.Sprintf("acct-%d", i%accounts), jan, meter.Allowed, false)
			if err := l.Append(ctx, ev, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/float64(obs.commits.Load()), "events/commit")
	b.ReportMetric(float64(obs.nanos.Load())/float64(obs.commits.Load())/1e3, "µs/commit")
}

// commitCounter observes group commits.
type commitCounter struct{ commits, nanos atomic.Int64 }

func (c *commitCounter) ObserveCommit(ops int, took time.Duration, err error) {
	c.commits.Add(1)
	c.nanos.Add(int64(took))
}
