package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// A group commit writes events and idempotency records only. Period
// counters and daily aggregates are folded in memory (overlay.go) and
// written by a checkpoint: one transaction that merges the deltas into the
// stored rows and records, in meta checkpoint_seq, the newest event they
// cover. Open loads the stored rows as they are and replays the events
// after checkpoint_seq into memory, so after any crash the aggregates
// equal the events: a checkpoint is atomic (bbolt commits it whole or not
// at all) and the events it summarises stay in the file until it commits.

var (
	metaCheckpointSeq = []byte("checkpoint_seq")
	metaLastSeq       = []byte("last_seq")
)

// checkpointSeq is the newest event the stored aggregates cover. A format
// 1 file (no checkpoint_seq) wrote them with every event: all of them.
func checkpointSeq(tx *bolt.Tx) uint64 {
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(metaCheckpointSeq); v != nil {
		return getUint64(v)
	}
	return getUint64(meta.Get(metaLastSeq))
}

// checkpointDue reports whether the writer should checkpoint now: enough
// events since the last one, or enough time with any.
func (l *Ledger) checkpointDue() bool {
	l.aggMu.RLock()
	n := l.live.events
	l.aggMu.RUnlock()
	return n >= l.opts.CheckpointEvents || (n > 0 && time.Since(l.lastCheckpoint) >= l.opts.CheckpointInterval)
}

// checkpointIfAny checkpoints when memory holds any event.
func (l *Ledger) checkpointIfAny() error {
	l.aggMu.RLock()
	n := l.live.events
	l.aggMu.RUnlock()
	if n == 0 {
		return nil
	}
	return l.checkpoint()
}

// checkpoint writes the in-memory deltas into the stored rows. Readers
// keep a consistent view throughout: until the transaction commits they
// add the deltas being written (folding) to the old rows, and once it has
// they see checkpoint_seq cover them and skip them. A failed checkpoint
// gives its deltas back to memory; the next one retries. Runs on the
// writer goroutine only.
func (l *Ledger) checkpoint() error {
	l.aggMu.Lock()
	f := l.live
	l.live, l.folding = newAggs(f.upTo), f
	l.aggMu.Unlock()
	start := time.Now()
	err := l.db.Update(func(tx *bolt.Tx) error {
		if err := f.write(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(metaCheckpointSeq, seqKey(f.upTo)); err != nil {
			return err
		}
		if err := meta.Put(metaLastSeq, seqKey(f.upTo)); err != nil {
			return err
		}
		if fn := l.beforeCheckpoint.Load(); fn != nil {
			return (*fn)()
		}
		return nil
	})
	l.aggMu.Lock()
	if err != nil {
		f.merge(l.live)
		l.live = f
	}
	l.folding = nil
	l.aggMu.Unlock()
	l.lastCheckpoint = time.Now()
	if err != nil {
		l.opts.Logger.Error("ledger checkpoint failed; its deltas stay in memory and the next one retries",
			"events", f.events, "error", err)
		return fmt.Errorf("checkpoint: %w", err)
	}
	if obs, ok := l.opts.Observer.(CheckpointObserver); ok {
		obs.ObserveCheckpoint(f.events, time.Since(start))
	}
	return nil
}

// Checkpoint makes the writer checkpoint now (if anything is in memory)
// and returns once it has committed. Verify and Prune call it first, so
// they see every committed event in the stored rows.
func (l *Ledger) Checkpoint(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The writer may be busy retrying a failed commit for a while: wait
	// for it without holding l.mu, so Close can still stop it.
	req := make(chan error, 1)
	select {
	case l.cpReq <- req:
		return <-req
	case <-l.quit:
		return meter.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CheckpointObserver is optionally implemented by a CommitObserver: it is
// told about every checkpoint (events covered, time taken).
type CheckpointObserver interface {
	ObserveCheckpoint(events int, took time.Duration)
}

// replay loads the events after the checkpoint into memory and finds the
// last sequence handed out. It runs in Open, before the writer starts.
func (l *Ledger) replay() error {
	return l.db.View(func(tx *bolt.Tx) error {
		cp := checkpointSeq(tx)
		live := newAggs(cp)
		last := max(cp, getUint64(tx.Bucket(bucketMeta).Get(metaLastSeq)))
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(seqKey(cp + 1)); k != nil; k, v = c.Next() {
			ev, err := decodeEvent(getUint64(k), v)
			if err != nil {
				return fmt.Errorf("replay event %d: %w", getUint64(k), err)
			}
			live.add(&ev)
			last = ev.Seq
		}
		l.live = live
		l.lastSeq.Store(last)
		return nil
	})
}

// CheckpointSeq is the newest event the stored counters and aggregates
// cover; later ones are held in memory until the next checkpoint.
func (l *Ledger) CheckpointSeq() uint64 {
	var cp uint64
	_ = l.db.View(func(tx *bolt.Tx) error { cp = checkpointSeq(tx); return nil })
	return cp
}
