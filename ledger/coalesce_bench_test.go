package ledger_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// BenchmarkLedger_DenialFlood isolates the ledger's share of a denial
// flood from HTTP: 64 producers append allowed calls and wait for their
// commits (sync mode), alone and beside answered denials of one account
// appended at a fixed METER_FLOOD_RATE per second (default 20000), with
// the writer coalescing denials (as shipped) and storing each as its own
// record (the previous behaviour). Rounds interleave the four runs;
// ratios are medians of each round's flooded/alone. Run it with
//
//	METER_BENCH_SECONDS=3 METER_BENCH_ROUNDS=3 \
//	  go test -run '^$' -bench BenchmarkLedger_DenialFlood -benchtime 1x ./ledger/
func BenchmarkLedger_DenialFlood(b *testing.B) {
	dur := time.Duration(benchEnv("METER_BENCH_SECONDS", 3)) * time.Second
	rounds, rate := benchEnv("METER_BENCH_ROUNDS", 3), benchEnv("METER_FLOOD_RATE", 20000)
	variants := []struct {
		name string
		opts func(ledger.Options) ledger.Options
	}{
		{"coalesced", func(o ledger.Options) ledger.Options { return o }},
		{"one_record_each", ledger.WithoutCoalescing},
	}
	ratio := map[string][]float64{}
	for range rounds {
		for _, v := range variants {
			alone := floodLedgerRun(b, v.opts, dur, 0)
			flooded := floodLedgerRun(b, v.opts, dur, rate)
			b.Logf("%s: %.0f sync appends/s alone, %.0f beside %d denials/s", v.name, alone, flooded, rate)
			ratio[v.name] = append(ratio[v.name], flooded/alone)
		}
	}
	for name, r := range ratio {
		slices.Sort(r)
		b.ReportMetric(r[len(r)/2], name+"_throughput_ratio")
	}
}

// floodLedgerRun returns the sync appends per second of 64 waiting
// producers over dur, beside rate answered denials per second (0: none).
func floodLedgerRun(b *testing.B, opts func(ledger.Options) ledger.Options, dur time.Duration, rate int) float64 {
	l, err := ledger.Open(filepath.Join(b.TempDir(), "meter.db"), opts(ledger.Options{NodeID: "f1"}))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	stop := make(chan struct{})
	var done atomic.Int64
	var wg sync.WaitGroup
	for p := range 64 {
		wg.Go(func() {
			account := fmt.Sprintf("acct_%d", p)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := l.Append(ctx, &meter.Event{Time: time.Now().UTC(), PeriodStart: jan, AccountID: account,
					KeyID: "k", Endpoint: "/v1/orders/{id}", Method: "GET", Status: 200, Decision: meter.Allowed}, true); err != nil {
					b.Error(err)
					return
				}
				done.Add(1)
			}
		})
	}
	if rate > 0 {
		wg.Go(func() { floodDenials(b, l, rate, stop) })
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}

// floodDenials appends rate answered denials per second, a millisecond's
// worth at a time, until stop closes.
func floodDenials(b *testing.B, l *ledger.Ledger, rate int, stop <-chan struct{}) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent, begin := 0, time.Now()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		due := int(time.Since(begin).Seconds() * float64(rate))
		for ; sent < due; sent++ {
			err := l.Append(ctx, &meter.Event{Time: time.Now().UTC(), PeriodStart: jan, AccountID: "flooder",
				KeyID: "kf", Endpoint: "/v1/orders/{id}", Method: "GET", Status: 429, Decision: meter.Denied}, false)
			if err != nil && err != meter.ErrOverloaded {
				b.Error(err)
				return
			}
		}
	}
}
