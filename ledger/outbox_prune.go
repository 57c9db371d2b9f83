package ledger

import (
	"bytes"
	"context"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// pruneChunk bounds the records one pruning transaction looks at, so the
// writer is never held long.
const pruneChunk = 1000

// PruneOutbox deletes, in chunks, finished deliveries created before
// before and notices made before before that are fanned out and wait for
// no delivery. A notice's id goes with it, so before must be well past
// the point where its cause could recur (a crossing recurs only within
// its period; callers keep 60 days). It returns how many records went.
func (l *Ledger) PruneOutbox(ctx context.Context, before time.Time) (int, error) {
	total := 0
	var from []byte
	for first := true; first || from != nil; first = false {
		err := l.update(ctx, func(tx *bolt.Tx) error {
			n, next, err := pruneHookLog(tx, before, from)
			total, from = total+n, next
			return err
		})
		if err != nil {
			return total, err
		}
	}
	for more := true; more; {
		err := l.update(ctx, func(tx *bolt.Tx) error {
			n, m, err := pruneNotices(tx, before)
			total, more = total+n, m
			return err
		})
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// pruneHookLog looks at up to pruneChunk finished deliveries from key
// from on and deletes the old ones; next is where the following chunk
// starts (nil: done).
func pruneHookLog(tx *bolt.Tx, before time.Time, from []byte) (n int, next []byte, err error) {
	c := tx.Bucket(bucketHookLog).Cursor()
	var old [][]byte
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	for seen := 0; k != nil && seen < pruneChunk; k, v = c.Next() {
		seen++
		var d meter.WebhookDelivery
		if err := decodeRecord(v, &d); err != nil || d.CreatedAt.Before(before) {
			old = append(old, bytes.Clone(k))
		}
	}
	if k != nil {
		next = bytes.Clone(k)
	}
	for _, k := range old {
		if err := tx.Bucket(bucketHookLog).Delete(k); err != nil {
			return 0, nil, err
		}
	}
	return len(old), next, nil
}

// pruneNotices deletes old notices from the front of the outbox, stopping
// at the first one that is recent, not yet fanned out, or still pending
// for some endpoint.
func pruneNotices(tx *bolt.Tx, before time.Time) (int, bool, error) {
	fanned := getUint64(tx.Bucket(bucketCursors).Get([]byte(fanoutCursor)))
	eps, err := endpointsIn(tx)
	if err != nil {
		return 0, false, err
	}
	out, ids, pending := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxIDs), tx.Bucket(bucketPending)
	n := 0
	for n < pruneChunk {
		k, v := out.Cursor().First()
		if k == nil || getUint64(k) > fanned {
			return n, false, nil
		}
		var nt meter.Notice
		if err := decodeRecord(v, &nt); err != nil || !nt.Time.Before(before) || waiting(pending, eps, getUint64(k)) {
			return n, false, err
		}
		if err := ids.Delete([]byte(nt.ID)); err != nil {
			return n, false, err
		}
		if err := out.Delete(k); err != nil {
			return n, false, err
		}
		n++
	}
	return n, true, nil
}

func waiting(pending *bolt.Bucket, eps []meter.WebhookEndpoint, seq uint64) bool {
	for i := range eps {
		if pending.Get(deliveryKey(eps[i].ID, seq)) != nil {
			return true
		}
	}
	return false
}
