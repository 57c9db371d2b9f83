package ledger_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// BenchmarkLedger_Reopen measures start-up after a crash: a ledger holding
// METER_BENCH_EVENTS (default 1,000,000) events over 1,000 accounts since
// its last checkpoint (a file image taken with Backup, as a kill -9 would
// leave it) is opened — replaying every one of them — and then, once
// checkpointed, opened again (what a clean restart costs, including
// bbolt's free-page scan that NoFreelistSync implies). Run it with
//
//	go test -run '^$' -bench BenchmarkLedger_Reopen -benchtime 1x ./ledger/
//
// Sub-benchmarks compare bbolt's freelist settings: the default (not synced,
// hashmap), synced with every commit, and not synced with the array type.
func BenchmarkLedger_Reopen(b *testing.B) {
	for _, fl := range []struct {
		name        string
		sync, array bool
	}{{"nofreelistsync_map", false, false}, {"freelistsync_map", true, false}, {"nofreelistsync_array", false, true}} {
		b.Run(fl.name, func(b *testing.B) { benchReopen(b, ledger.WithFreelist(ledger.Options{}, fl.sync, fl.array)) })
	}
}

func benchReopen(b *testing.B, base ledger.Options) {
	n := benchEnv("METER_BENCH_EVENTS", 1_000_000)
	o := base
	o.NodeID, o.QueueSize, o.CheckpointEvents, o.CheckpointInterval = "r1", 1<<20, 1<<40, 1000*time.Hour
	l, err := ledger.Open(filepath.Join(b.TempDir(), "meter.db"), o)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; {
		ev := newEvent(fmt.Sprintf("acct-%d", i%1000), jan.Add(time.Duration(i)*time.Second), meter.Allowed, false)
		if err := l.Append(ctx, ev, false); err != nil {
			time.Sleep(time.Millisecond) // queue full
			continue
		}
		i++
	}
	if err := (ledgerAppender{l}).flush(); err != nil {
		b.Fatal(err)
	}
	image := filepath.Join(b.TempDir(), "image.db")
	f, err := os.Create(image)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.Backup(ctx, f); err != nil {
		b.Fatal(err)
	}
	f.Close()
	l.Close()
	fi, _ := os.Stat(image)
	b.ResetTimer()
	start := time.Now()
	r, err := ledger.Open(image, base)
	if err != nil {
		b.Fatal(err)
	}
	replay := time.Since(start)
	if c, _ := r.Counter(ctx, "acct-7", jan); c.Calls != int64(n/1000) || r.CheckpointSeq() != 0 {
		b.Fatalf("after replay: %+v, checkpoint %d", c, r.CheckpointSeq())
	}
	start = time.Now()
	r.Close() // checkpoints the replayed events
	closeTook := time.Since(start)
	start = time.Now()
	r, err = ledger.Open(image, base)
	if err != nil {
		b.Fatal(err)
	}
	clean := time.Since(start)
	r.Close()
	b.ReportMetric(replay.Seconds(), "replay_open_s")
	b.ReportMetric(closeTook.Seconds(), "checkpoint_close_s")
	b.ReportMetric(clean.Seconds(), "clean_open_s")
	b.ReportMetric(float64(fi.Size())/(1<<20), "file_MiB")
	b.ReportMetric(float64(n), "events")
}
