package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// MustOpenLedger opens a ledger in a fresh temp dir and closes it at the
// end of the test.
func MustOpenLedger(tb testing.TB) *ledger.Ledger {
	tb.Helper()
	return mustOpenAt(tb, filepath.Join(tb.TempDir(), "meter.db"))
}

func mustOpenAt(tb testing.TB, path string) *ledger.Ledger {
	tb.Helper()
	l, err := ledger.Open(path, ledger.Options{NodeID: "t1"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

var (
	jan = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx = context.Background()
)

func newEvent(account string, at time.Time, d meter.Decision, overage bool) *meter.Event {
	return &meter.Event{Time: at, PeriodStart: jan, AccountID: account, KeyID: "key_1",
		Endpoint: "/v1/things/{id}", Method: "GET", Status: 200, LatencyMicros: 1500,
		Decision: d, Overage: overage}
}

func TestLedger_Append(t *testing.T) {
	l := MustOpenLedger(t)
	events := []*meter.Event{
		newEvent("a", jan.Add(time.Hour), meter.Allowed, false),
		newEvent("a", jan.Add(2*time.Hour), meter.Allowed, true),
		newEvent("a", jan.Add(25*time.Hour), meter.Denied, false),
		newEvent("b", jan.Add(time.Hour), meter.Allowed, false),
	}
	events[1].Status = 503
	for i, ev := range events {
		if err := l.Append(ctx, ev, true); err != nil {
			t.Fatal(err)
		}
		if want := uint64(i + 1); ev.Seq != want || ev.ID() != fmt.Sprintf("t1-%d", want) {
			t.Fatalf("event %d: seq %d id %s", i, ev.Seq, ev.ID())
		}
	}
	got, err := l.EventsAfter(ctx, 0, 100)
	if err != nil || len(got) != 4 {
		t.Fatalf("EventsAfter: %d events, %v", len(got), err)
	}
	if want := *events[1]; got[1] != want {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got[1], want)
	}
	t.Run("Counter", func(t *testing.T) {
		c, err := l.Counter(ctx, "a", jan)
		if err != nil || c.Calls != 2 || c.Overage != 1 || c.Denied != 1 || !c.LastCallAt.Equal(jan.Add(25*time.Hour)) {
			t.Fatalf("counter %+v, %v", c, err)
		}
	})
	t.Run("DailyUsage", func(t *testing.T) {
		days, err := l.DailyUsage(ctx, "a", jan, jan.AddDate(0, 0, 2))
		if err != nil || len(days) != 3 {
			t.Fatalf("%d days, %v", len(days), err)
		}
		if d := days[0]; d.Calls != 2 || d.Overage != 1 || d.Errors != 1 || d.LatencySumMicros != 3000 {
			t.Fatalf("day 0: %+v", d)
		}
		if d := days[1]; d.Calls != 0 || d.Denied != 1 {
			t.Fatalf("day 1: %+v", d)
		}
		if d := days[2]; d.Usage != (meter.Usage{}) {
			t.Fatalf("day 2 should be empty: %+v", d)
		}
		all, _ := l.DailyUsage(ctx, "", jan, jan)
		if all[0].Calls != 3 {
			t.Fatalf("all accounts day 0: %+v", all[0])
		}
	})
	t.Run("EventsAfterLimit", func(t *testing.T) {
		got, _ := l.EventsAfter(ctx, 2, 1)
		if len(got) != 1 || got[0].Seq != 3 {
			t.Fatalf("got %+v", got)
		}
	})
}

// TestLedger_GroupCommit checks that concurrent producers all get
// distinct, dense sequences and that counters equal the events.
func TestLedger_GroupCommit(t *testing.T) {
	l := MustOpenLedger(t)
	const producers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := l.Append(ctx, newEvent(fmt.Sprintf("acct%d", p%4), jan, meter.Allowed, false), true); err != nil {
					errs <- err
					return
				}
			}
		}(p)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, _ := l.EventsAfter(ctx, 0, producers*each+1)
	if len(got) != producers*each {
		t.Fatalf("%d events", len(got))
	}
	for i, ev := range got {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("seq gap at %d: %d", i, ev.Seq)
		}
	}
	var total int64
	for a := 0; a < 4; a++ {
		c, _ := l.Counter(ctx, fmt.Sprintf("acct%d", a), jan)
		total += c.Calls
	}
	if total != producers*each {
		t.Fatalf("counters sum %d", total)
	}
}

func TestLedger_CommitFailure(t *testing.T) {
	l := MustOpenLedger(t)
	if err := l.Append(ctx, newEvent("a", jan, meter.Allowed, false), true); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk on fire")
	l.SetBeforeCommitFn(func() error { return boom })
	err := l.Append(ctx, newEvent("a", jan, meter.Allowed, false), true)
	if !errors.Is(err, boom) {
		t.Fatalf("want commit error, got %v", err)
	}
	l.SetBeforeCommitFn(nil)
	ev := newEvent("a", jan, meter.Allowed, false)
	if err := l.Append(ctx, ev, true); err != nil || ev.Seq != 2 {
		t.Fatalf("after failure: seq %d, %v (the failed commit must not burn a sequence)", ev.Seq, err)
	}
	c, _ := l.Counter(ctx, "a", jan)
	if c.Calls != 2 {
		t.Fatalf("counter %d, want 2", c.Calls)
	}
}

func TestLedger_Close(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meter.db")
	l, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := l.Append(ctx, newEvent("a", jan, meter.Allowed, false), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("ErrClosed", func(t *testing.T) {
		if err := l.Append(ctx, newEvent("a", jan, meter.Allowed, false), true); !errors.Is(err, meter.ErrClosed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("QueueCommittedOnClose", func(t *testing.T) {
		l2, err := ledger.Open(path, ledger.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l2.Close()
		if seq, _ := l2.LastSeq(ctx); seq != 100 {
			t.Fatalf("last seq %d, want 100", seq)
		}
		node := l.NodeID()
		if l2.NodeID() != node {
			t.Fatalf("node id changed across reopen: %s -> %s", node, l2.NodeID())
		}
	})
}

func TestLedger_Open(t *testing.T) {
	t.Run("ErrInUse", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "meter.db")
		mustOpenAt(t, path)
		start := time.Now()
		_, err := ledger.Open(path, ledger.Options{LockTimeout: 200 * time.Millisecond})
		if !errors.Is(err, ledger.ErrInUse) {
			t.Fatalf("got %v", err)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatal("in-use detection took too long")
		}
	})
	for name, content := range corruptFiles(t) {
		t.Run("ErrCorrupt/"+name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "meter.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ledger.Open(path, ledger.Options{})
			if !errors.Is(err, ledger.ErrCorrupt) {
				t.Fatalf("got %v", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, content) {
				t.Fatal("the file was modified")
			}
		})
	}
}

// corruptFiles returns files Open must refuse: garbage, a truncated
// ledger, and a bbolt file of another program.
func corruptFiles(t *testing.T) map[string][]byte {
	dir := t.TempDir()
	path := filepath.Join(dir, "meter.db")
	l, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		if err := l.Append(ctx, newEvent(fmt.Sprintf("acct-%d", i), jan, meter.Allowed, false), false); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	good, _ := os.ReadFile(path)
	foreign := filepath.Join(dir, "other.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
	db.Close()
	other, _ := os.ReadFile(foreign)
	return map[string][]byte{
		"garbage": bytes.Repeat([]byte("not a database "), 1000),
		// bbolt grows files ahead of use; cut inside the used pages.
		"truncated": good[:5*4096+100],
		"foreign":   other,
	}
}

// TestLedger_AsyncDelay checks async appends are committed within a
// bounded time even though nobody waits for them, and that a waiting
// caller is not held back by an async group being gathered.
func TestLedger_AsyncDelay(t *testing.T) {
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{AsyncDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 10; i++ {
		if err := l.Append(ctx, newEvent("a", jan, meter.Allowed, false), false); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := l.Append(ctx, newEvent("a", jan, meter.Allowed, false), true); err != nil {
		t.Fatal(err)
	}
	if seq, _ := l.LastSeq(ctx); seq != 11 {
		t.Fatalf("after a waited append: last seq %d, want 11", seq)
	}
	if d := time.Since(start); d > 45*time.Millisecond {
		t.Logf("waited append took %v (gathering should have ended when it arrived)", d)
	}
	for i := 0; i < 5; i++ {
		l.Append(ctx, newEvent("a", jan, meter.Allowed, false), false)
	}
	deadline := time.Now().Add(2 * time.Second)
	for seq, _ := l.LastSeq(ctx); seq != 16; seq, _ = l.LastSeq(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("async appends not committed within 2s: last seq %d", seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
