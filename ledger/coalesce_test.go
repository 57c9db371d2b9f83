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
// own record, and so does one carrying a notice (limit_reached). Counters,
// daily usage, checkpoint replay and verify all see every denied call.
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
	// The first denial of the period carries limit_reached: it keeps its
	// own record, and its notice points at it.
	first := denial(jan, "/v1/x")
	first.Notices = &meter.NoticeList{{ID: "n-limit", Type: meter.NoticeLimitReached, Time: jan,
		AccountID: "a", PeriodStart: jan, Calls: 1000}}
	must(t, l.Append(ctx, first, false))
	queued := 1
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
	// allowed, the noticed denial, 40 × /v1/x, 5 × /v1/y, next day, the
	// idempotent one.
	if len(evs) != 6 {
		t.Fatalf("%d records, want 6: %+v", len(evs), evs)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d: sequences must stay dense", i, ev.Seq)
		}
	}
	if n := evs[1]; n.Coalesced != 0 || n.Calls() != 1 || n.Seq != 2 {
		t.Fatalf("the noticed denial's record %+v", n)
	}
	if ns, err := l.Notices(ctx, 0, 10); err != nil || len(ns) != 1 || ns[0].EventSeq != 2 || ns[0].Type != meter.NoticeLimitReached {
		t.Fatalf("outbox %+v, %v; want limit_reached on event 2", ns, err)
	}
	evs = append(evs[:1], evs[2:]...) // the rest as before
	var calls int64
	for _, ev := range evs {
		calls += ev.Calls()
	}
	if x := evs[1]; x.Coalesced != 40 || x.Endpoint != "/v1/x" || !x.Time.Equal(jan.Add(39*time.Minute)) {
		t.Fatalf("coalesced record %+v", x)
	}
	if evs[2].Coalesced != 5 || evs[3].Coalesced != 0 || evs[4].IdempotencyKey != "retry-1" || evs[4].Coalesced != 0 {
		t.Fatalf("records %+v", evs[2:])
	}
	if calls != 48 || idem.Seq != 6 {
		t.Fatalf("records stand for %d calls besides the noticed one (want 48); idempotent denial seq %d", calls, idem.Seq)
	}
	check := func(t *testing.T, l *ledger.Ledger) {
		t.Helper()
		c, err := l.Counter(ctx, "a", jan)
		if err != nil || c.Calls != 1 || c.Denied != 48 || !c.LastCallAt.Equal(jan.Add(25*time.Hour)) {
			t.Fatalf("counter %+v, %v", c, err)
		}
		days, _ := l.DailyUsage(ctx, "a", jan, jan.AddDate(0, 0, 1))
		if days[0].Denied != 47 || days[1].Denied != 1 {
			t.Fatalf("days %+v", days)
		}
		if rep := mustVerify(t, l); !rep.OK || rep.Events != 6 {
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
		if c.CheckpointSeq() >= 6 {
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
