package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// TestLedger_Checkpoint: commits leave counters to checkpoints; a file
// image taken between two checkpoints (what a crash leaves) opens with
// the counters equal to its events by replaying them; a failed checkpoint
// loses nothing; readers never see a count twice or go backwards while
// checkpoints run.
func TestLedger_Checkpoint(t *testing.T) {
	t.Run("Replay", func(t *testing.T) {
		l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"),
			ledger.Options{NodeID: "c1", CheckpointEvents: 1 << 30, CheckpointInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		putAccount(t, l, "a")
		for i := range 30 {
			if err := l.Append(ctx, newEvent("a", jan.Add(time.Duration(i)*time.Hour), meter.Allowed, false), true); err != nil {
				t.Fatal(err)
			}
			if i == 9 {
				if err := l.Checkpoint(ctx); err != nil || l.CheckpointSeq() != 10 {
					t.Fatalf("checkpoint: seq %d, %v", l.CheckpointSeq(), err)
				}
			}
		}
		if l.CheckpointSeq() != 10 {
			t.Fatalf("commits moved the checkpoint to %d", l.CheckpointSeq())
		}
		image := filepath.Join(t.TempDir(), "image.db")
		f, err := os.Create(image)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Backup(ctx, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		c2 := mustOpenAt(t, image)
		if c, err := c2.Counter(ctx, "a", jan); err != nil || c.Calls != 30 || c2.CheckpointSeq() != 10 {
			t.Fatalf("image: counter %+v (%v), checkpoint %d; want 30 calls replayed over checkpoint 10", c, err, c2.CheckpointSeq())
		}
		days, _ := c2.DailyUsage(ctx, "a", jan, jan.AddDate(0, 0, 1))
		if days[0].Usage.Calls != 24 || days[1].Usage.Calls != 6 {
			t.Fatalf("image days %+v", days)
		}
		ev := newEvent("a", jan, meter.Allowed, false)
		if err := c2.Append(ctx, ev, true); err != nil || ev.Seq != 31 {
			t.Fatalf("append on the image: seq %d, %v", ev.Seq, err)
		}
		if rep := mustVerify(t, c2); !rep.OK || rep.Events != 31 {
			t.Fatalf("verify image: %+v", rep)
		}
	})
	t.Run("Failure", func(t *testing.T) {
		var fail atomic.Bool
		l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{NodeID: "c1",
			CheckpointEvents: 1 << 30, CheckpointInterval: time.Hour,
			BeforeCheckpoint: func() error {
				if fail.Load() {
					return errors.New("injected checkpoint failure")
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		putAccount(t, l, "a")
		for range 5 {
			if err := l.Append(ctx, newEvent("a", jan, meter.Allowed, false), true); err != nil {
				t.Fatal(err)
			}
		}
		fail.Store(true)
		if err := l.Checkpoint(ctx); err == nil {
			t.Fatal("checkpoint with an injected failure succeeded")
		}
		if err := l.Append(ctx, newEvent("a", jan, meter.Denied, false), true); err != nil {
			t.Fatal(err)
		}
		if c, _ := l.Counter(ctx, "a", jan); c.Calls != 5 || c.Denied != 1 || l.CheckpointSeq() != 0 {
			t.Fatalf("after a failed checkpoint: %+v, checkpoint %d", c, l.CheckpointSeq())
		}
		fail.Store(false)
		if rep := mustVerify(t, l); !rep.OK || rep.Counters.Checked != 1 || l.CheckpointSeq() != 6 {
			t.Fatalf("verify after the retry: %+v, checkpoint %d", rep, l.CheckpointSeq())
		}
		if c, _ := l.Counter(ctx, "a", jan); c.Calls != 5 || c.Denied != 1 {
			t.Fatalf("after the retry: %+v", c)
		}
	})
	t.Run("ReadsDuringCheckpoints", func(t *testing.T) {
		l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"),
			ledger.Options{NodeID: "c1", CheckpointEvents: 37, CheckpointInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var appended atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					if err := l.Append(ctx, newEvent("a", jan, meter.Allowed, false), true); err != nil {
						t.Error(err)
						return
					}
					appended.Add(1)
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		var last int64
		for reads := 0; ; reads++ {
			select {
			case <-done:
				if c, _ := l.Counter(ctx, "a", jan); c.Calls != 800 {
					t.Fatalf("final counter %d after %d reads", c.Calls, reads)
				}
				return
			default:
			}
			c, err := l.Counter(ctx, "a", jan)
			if err != nil {
				t.Fatal(err)
			}
			if c.Calls < last || c.Calls > appended.Load()+8 {
				t.Fatalf("read %d: counter %d after %d, %d appended", reads, c.Calls, last, appended.Load())
			}
			last = c.Calls
		}
	})
}

func putAccount(t *testing.T, l *ledger.Ledger, id string) {
	t.Helper()
	if err := l.PutAccount(ctx, meter.Account{ID: id, Name: id, Email: id + "@x.test", Plan: "pro"}); err != nil {
		t.Fatal(err)
	}
}

// TestLedger_CheckpointDuringStall: while the writer retries a failed
// group, Checkpoint waits (or gives up with its ctx), and Close still
// stops the ledger instead of deadlocking with a waiting Checkpoint.
func TestLedger_CheckpointDuringStall(t *testing.T) {
	var fail atomic.Bool
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{NodeID: "c1",
		RetryMax: 20 * time.Millisecond, BeforeCommit: func() error {
			if fail.Load() {
				return errors.New("injected commit failure")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	eventually(t, "the writer holds a failed group", func() error {
		if err := l.Append(ctx, newEvent("a", jan, meter.Denied, false), false); !errors.Is(err, ledger.ErrUnavailable) {
			return fmt.Errorf("async append: %v", err)
		}
		return nil
	})
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := l.Checkpoint(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("checkpoint during a stall: %v, want the ctx deadline", err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- l.Checkpoint(ctx) }()
	time.Sleep(50 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close deadlocked with a Checkpoint waiting on a stalled writer")
	}
	select {
	case <-waiting: // ErrClosed, or nil if the writer took it after the stall
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting Checkpoint never returned")
	}
}
