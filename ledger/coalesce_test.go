package ledger_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// TestLedger_CoalescedDenials: the answered denials of one group that
// share account, key, endpoint, method, status and day are stored as one
// record carrying their number; a denial with an idempotency id keeps its
// own record. Counters, daily usage, checkpoint replay and verify all see
// every denied call.
func TestLedger_CoalescedDenials(t *testing.T) {
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"),
		ledger.Options{NodeID: "d1", CheckpointEvents: 1 << 30, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	putAccount(t, l, "a")
	if err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	// Hold the writer inside a commit so every write below queues up and
	// lands in the next group.
	entered, release := make(chan struct{}, 1), make(chan struct{})
	l.SetBeforeCommitFn(func() error {
		select {
		case entered <- struct{}{}:
			<-release
		default:
		}
		return nil
	})
	var wg sync.WaitGroup
	wait := func(ev *meter.Event) {
		wg.Go(func() {
			if err := l.Append(ctx, ev, true); err != nil {
				t.Error(err)
			}
		})
	}
	wait(newEvent("a", jan, meter.Allowed, false))
	<-entered
	denial := func(at time.Time, endpoint string) *meter.Event {
		ev := newEvent("a", at, meter.Denied, false)
		ev.Status, ev.Endpoint = 429, endpoint
		return ev
	}
	queued := 0
	for i := range 40 {
		must(t, l.Append(ctx, denial(jan.Add(time.Duration(i)*time.Minute), "/v1/x"), false))
		queued++
	}
	for range 5 {
		must(t, l.Append(ctx, denial(jan.Add(time.Hour), "/v1/y"), false))
		queued++
	}
	must(t, l.Append(ctx, denial(jan.Add(25*time.Hour), "/v1/x"), false)) // next day
	queued++
	idem := denial(jan.Add(time.Hour), "/v1/x")
	idem.IdempotencyKey = "retry-1"
	wait(idem)
	queued++
	for l.QueueDepth() < queued {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	l.SetBeforeCommitFn(nil)

	evs, err := l.EventsAfter(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	// allowed, 40 × /v1/x, 5 × /v1/y, next day, the idempotent one.
	if len(evs) != 5 {
		t.Fatalf("%d records, want 5: %+v", len(evs), evs)
	}
	var calls int64
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, ev.Seq)
		}
		calls += ev.Calls()
	}
	if x := evs[1]; x.Coalesced != 40 || x.Endpoint != "/v1/x" || !x.Time.Equal(jan.Add(39*time.Minute)) {
		t.Fatalf("coalesced record %+v", x)
	}
	if evs[2].Coalesced != 5 || evs[3].Coalesced != 0 || evs[4].IdempotencyKey != "retry-1" || evs[4].Coalesced != 0 {
		t.Fatalf("records %+v", evs[2:])
	}
	if calls != 48 || idem.Seq != 5 {
		t.Fatalf("records stand for %d calls (want 48); idempotent denial seq %d", calls, idem.Seq)
	}
	check := func(t *testing.T, l *ledger.Ledger) {
		t.Helper()
		c, err := l.Counter(ctx, "a", jan)
		if err != nil || c.Calls != 1 || c.Denied != 47 || !c.LastCallAt.Equal(jan.Add(25*time.Hour)) {
			t.Fatalf("counter %+v, %v", c, err)
		}
		days, _ := l.DailyUsage(ctx, "a", jan, jan.AddDate(0, 0, 1))
		if days[0].Denied != 46 || days[1].Denied != 1 {
			t.Fatalf("days %+v", days)
		}
		if rep := mustVerify(t, l); !rep.OK || rep.Events != 5 {
			t.Fatalf("verify %+v", rep)
		}
	}
	t.Run("Replay", func(t *testing.T) {
		// An image taken before any checkpoint covers these records
		// (what a crash leaves) rebuilds its counters from them.
		image := filepath.Join(t.TempDir(), "image.db")
		f, err := os.Create(image)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Backup(ctx, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		c := mustOpenAt(t, image)
		if c.CheckpointSeq() >= 5 {
			t.Fatalf("the image was checkpointed (seq %d): nothing replayed", c.CheckpointSeq())
		}
		check(t, c)
	})
	t.Run("Live", func(t *testing.T) { check(t, l) }) // verify checkpoints
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
