package ledger_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkLedger_AppendVsBolt is issue #12's ledger append benchmark: 64
// producers over 1,000 accounts append for a fixed time, against the
// ledger and against a raw bbolt single writer written here (one Put per
// event, same group size bound, same 2 ms linger for answered writes, same
// cohort yield for waiting ones), interleaved A B A B, medians reported.
// "async" producers do not wait for the commit (async mode, denials);
// "sync" ones do (sync mode). Run it with
//
//	go test -run '^$' -bench BenchmarkLedger_AppendVsBolt -benchtime 1x ./ledger/
//
// METER_BENCH_SECONDS (default 3) per run, METER_BENCH_ROUNDS (default 3).
func BenchmarkLedger_AppendVsBolt(b *testing.B) {
	dur := time.Duration(benchEnv("METER_BENCH_SECONDS", 3)) * time.Second
	rounds := benchEnv("METER_BENCH_ROUNDS", 3)
	for _, wait := range []bool{false, true} {
		mode := map[bool]string{false: "async", true: "sync"}[wait]
		b.Run(mode, func(b *testing.B) {
			targets := []struct {
				name string
				open func(b *testing.B) appender
			}{
				{"ledger", func(b *testing.B) appender { return openLedgerAppender(b, ledger.Options{}) }},
				{"ledger_freelistsync", func(b *testing.B) appender {
					return openLedgerAppender(b, ledger.WithFreelist(ledger.Options{}, true, false))
				}},
				{"ledger_array", func(b *testing.B) appender {
					return openLedgerAppender(b, ledger.WithFreelist(ledger.Options{}, false, true))
				}},
				{"raw_bolt", openRawAppender},
			}
			rates := map[string][]float64{}
			for range rounds {
				for _, tg := range targets {
					a := tg.open(b)
					rates[tg.name] = append(rates[tg.name], driveAppends(b, a, wait, dur))
					a.close()
				}
			}
			raw := medianOf(rates["raw_bolt"])
			for _, tg := range targets {
				m := medianOf(rates[tg.name])
				b.ReportMetric(m, tg.name+"_events/s")
				if tg.name != "raw_bolt" {
					b.ReportMetric(m/raw, tg.name+"_ratio")
				}
			}
			b.Logf("%s events/s per round: %v", mode, rates)
		})
	}
}

// appender is one target of the benchmark.
type appender interface {
	append(ev *meter.Event, wait bool) error
	flush() error
	close()
}

type ledgerAppender struct{ l *ledger.Ledger }

func openLedgerAppender(b *testing.B, o ledger.Options) appender {
	o.QueueSize = 1 << 20
	l, err := ledger.Open(filepath.Join(b.TempDir(), "meter.db"), o)
	if err != nil {
		b.Fatal(err)
	}
	return ledgerAppender{l}
}

func (a ledgerAppender) append(ev *meter.Event, wait bool) error { return a.l.Append(ctx, ev, wait) }
func (a ledgerAppender) flush() error {
	for {
		err := a.l.Flush(ctx)
		if !errors.Is(err, meter.ErrOverloaded) {
			return err
		}
		time.Sleep(time.Millisecond) // the queue is still full
	}
}
func (a ledgerAppender) close() { a.l.Close() }

// driveAppends runs 64 producers for dur and returns committed events/s
// (async producers are flushed before the clock stops).
func driveAppends(b *testing.B, a appender, wait bool, dur time.Duration) float64 {
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for p := range 64 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ev := newEvent(fmt.Sprintf("acct-%d", (p*7919+i)%1000), jan, meter.Allowed, false)
				if err := a.append(ev, wait); err != nil {
					if !wait {
						runtime.Gosched() // queue full: let the writer catch up
						continue
					}
					b.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	if err := a.flush(); err != nil {
		b.Fatal(err)
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}

// rawAppender is the baseline: one goroutine owns bbolt and commits what
// producers queued, one Put per event, with the ledger's grouping rules.
type rawAppender struct {
	db    *bolt.DB
	queue chan rawOp
	done  chan struct{}
	seq   uint64
}

type rawOp struct {
	val  []byte
	done chan error // nil: nobody waits; a flush sends an empty val
}

func openRawAppender(b *testing.B) appender {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600,
		&bolt.Options{InitialMmapSize: 1 << 30, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("events")); return err }); err != nil {
		b.Fatal(err)
	}
	a := &rawAppender{db: db, queue: make(chan rawOp, 1<<20), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *rawAppender) append(ev *meter.Event, wait bool) error {
	val := fmt.Appendf(make([]byte, 0, 96), "%s|%s|%s|%s|%d", ev.AccountID, ev.KeyID, ev.Endpoint, ev.Method, ev.Time.UnixNano())
	if !wait {
		a.queue <- rawOp{val: val}
		return nil
	}
	done := make(chan error, 1)
	a.queue <- rawOp{val: val, done: done}
	return <-done
}

func (a *rawAppender) flush() error {
	done := make(chan error, 1)
	a.queue <- rawOp{done: done}
	return <-done
}

func (a *rawAppender) close() {
	close(a.queue)
	<-a.done
	a.db.Close()
}

func (a *rawAppender) run() {
	defer close(a.done)
	batch := make([]rawOp, 0, 4096)
	last := 0
	for o := range a.queue {
		batch = a.fill(append(batch[:0], o))
		if !slices.ContainsFunc(batch, func(o rawOp) bool { return o.done != nil }) {
			timer := time.NewTimer(2 * time.Millisecond)
		gather:
			for len(batch) < 4096 {
				select {
				case o, ok := <-a.queue:
					if !ok {
						break gather
					}
					batch = append(batch, o)
					if o.done != nil {
						break gather
					}
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
		}
		for i := 0; i < 8 && len(batch) < last && len(batch) < 4096; i++ {
			runtime.Gosched()
			batch = a.fill(batch)
		}
		last = len(batch)
		err := a.db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte("events"))
			bk.FillPercent = 1
			for _, o := range batch {
				if o.val == nil {
					continue
				}
				a.seq++
				if err := bk.Put(binary.BigEndian.AppendUint64(nil, a.seq), o.val); err != nil {
					return err
				}
			}
			return nil
		})
		for _, o := range batch {
			if o.done != nil {
				o.done <- err
			}
		}
	}
}

func (a *rawAppender) fill(batch []rawOp) []rawOp {
	for len(batch) < 4096 {
		select {
		case o, ok := <-a.queue:
			if !ok {
				return batch
			}
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkBolt_FsyncsPerCommit prices issue #12's "one fsync per group":
// a bbolt commit of 64 small events syncs twice (data pages, then the meta
// page). "one_sync" sets NoSync and calls fdatasync once after the commit —
// unsafe as a store (the meta page may reach the disk before the pages it
// points to), so it only measures what a scheme with one fsync per group
// (an fsynced append-only segment folded into bbolt later) could gain.
func BenchmarkBolt_FsyncsPerCommit(b *testing.B) {
	for _, v := range []struct {
		name               string
		oneSync, allocated bool
	}{{"bbolt_two_syncs", false, false}, {"bbolt_two_syncs_fallocated", false, true}, {"one_sync", true, false}} {
		oneSync := v.oneSync
		b.Run(v.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "s.db")
			db, err := bolt.Open(path, 0o600,
				&bolt.Options{NoSync: oneSync, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
			if err != nil {
				b.Fatal(err)
			}
			if v.allocated {
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					b.Fatal(err)
				}
				if err := syscall.Fallocate(int(f.Fd()), 0, 0, 1<<30); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
			defer db.Close()
			val := make([]byte, 100)
			var seq uint64
			b.ResetTimer()
			for range b.N {
				err := db.Update(func(tx *bolt.Tx) error {
					bk, err := tx.CreateBucketIfNotExists([]byte("events"))
					if err != nil {
						return err
					}
					bk.FillPercent = 1
					for range 64 {
						seq++
						if err := bk.Put(binary.BigEndian.AppendUint64(nil, seq), val); err != nil {
							return err
						}
					}
					return nil
				})
				if err == nil && oneSync {
					err = db.Sync()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}
