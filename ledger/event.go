package ledger

import (
	"context"
	"fmt"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// EventsAfter implements meter.EventLog: up to limit events with
// Seq > after, oldest first. The read is bounded by limit so a large
// backlog is consumed in short transactions.
func (l *Ledger) EventsAfter(ctx context.Context, after uint64, limit int) ([]meter.Event, error) {
	var out []meter.Event
	err := l.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			ev, err := decodeEvent(getUint64(k), v)
			if err != nil {
				return fmt.Errorf("event %d: %w", getUint64(k), err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// LastSeq implements meter.EventLog.
func (l *Ledger) LastSeq(ctx context.Context) (uint64, error) {
	return l.lastSeq.Load(), ctx.Err()
}

// FirstSeq returns the oldest event still held (0 if none): older ones
// were pruned.
func (l *Ledger) FirstSeq(ctx context.Context) (uint64, error) {
	var seq uint64
	err := l.view(ctx, func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketEvents).Cursor().First()
		seq = getUint64(k)
		return nil
	})
	return seq, err
}

// Cursor implements meter.EventLog.
func (l *Ledger) Cursor(ctx context.Context, name string) (uint64, error) {
	var seq uint64
	err := l.view(ctx, func(tx *bolt.Tx) error {
		seq = getUint64(tx.Bucket(bucketCursors).Get([]byte(name)))
		return nil
	})
	return seq, err
}

// SetCursor implements meter.EventLog.
func (l *Ledger) SetCursor(ctx context.Context, name string, seq uint64) error {
	return l.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCursors).Put([]byte(name), seqKey(seq))
	})
}

// Flush returns once every write queued before it is committed: the
// answered-but-unwritten writes of async mode and of denials. It fails
// with the writer's error while the writer retries a failed commit.
func (l *Ledger) Flush(ctx context.Context) error {
	return l.update(ctx, func(*bolt.Tx) error { return nil })
}
