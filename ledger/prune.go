package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// DefaultRetention is how long raw events and idempotency records are
// kept: the longest billing period (31 days) plus a few days to re-export
// or dispute a closed month.
const DefaultRetention = 35 * 24 * time.Hour

// PruneOptions configure Prune. Zero values take the documented defaults.
type PruneOptions struct {
	// Retention is how long raw events and idempotency records are kept
	// (default DefaultRetention). The cutoff is rounded down to a UTC
	// midnight, so a day's events are pruned all together or not at all.
	Retention time.Duration
	// Cursors names the export cursors that must have passed an event
	// before it may go; an unset cursor holds everything. Empty: no export
	// is configured and only the retention window applies.
	Cursors []string
	// BatchSize bounds the keys deleted per transaction (default 1000), so
	// the writer commits other work between two batches.
	BatchSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *PruneOptions) setDefaults() {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// PruneReport says what one Prune did.
type PruneReport struct {
	// Cutoff: events and idempotency records from before it were due.
	Cutoff time.Time
	// Events and Idempotency count the records deleted.
	Events      int
	Idempotency int
	// Transactions counts the write transactions used.
	Transactions int
	// HeldBy names the export cursor that kept events older than the
	// cutoff ("" if none did): that export lags behind the retention.
	HeldBy string
}

// Prune deletes raw events older than the retention window that every
// named export cursor has passed, and idempotency records older than the
// window. Daily aggregates, counters, accounts and cursors are never
// touched, so usage figures do not change.
//
// Events go oldest sequence first and pruning stops at the first event it
// must keep, so the event log stays one contiguous run of sequences from
// FirstSeq to LastSeq: a reader tailing by sequence never meets a hole. An
// event recorded late with an old timestamp therefore waits for the ones
// committed before it.
//
// Each batch is one small write transaction run by the writer between
// group commits, so metering is never stalled behind a long delete. On an
// error the report covers the batches already committed.
func (l *Ledger) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	opts.setDefaults()
	rep := PruneReport{Cutoff: meter.DayOf(opts.Now().Add(-opts.Retention))}
	// Events after the checkpoint are kept for replay: cover them first.
	if err := l.Checkpoint(ctx); err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	if err := l.pruneEvents(ctx, opts, &rep); err != nil {
		return rep, fmt.Errorf("prune events: %w", err)
	}
	if err := l.pruneIdempotency(ctx, opts, &rep); err != nil {
		return rep, fmt.Errorf("prune idempotency: %w", err)
	}
	return rep, nil
}

func (l *Ledger) pruneEvents(ctx context.Context, opts PruneOptions, rep *PruneReport) error {
	for {
		var n int
		var done bool
		err := l.update(ctx, func(tx *bolt.Tx) error {
			var err error
			n, done, err = pruneEventBatch(tx, opts, rep)
			return err
		})
		if err != nil {
			return err
		}
		rep.Transactions++
		rep.Events += n
		if done {
			return nil
		}
	}
}

// pruneEventBatch deletes up to BatchSize events from the oldest on and
// reports whether pruning is done (it met an event to keep, or the end).
// It runs inside the writer's transaction: it fails only on storage errors.
func pruneEventBatch(tx *bolt.Tx, opts PruneOptions, rep *PruneReport) (int, bool, error) {
	limit, holder := exportedUpTo(tx.Bucket(bucketCursors), opts.Cursors)
	// Events after the last checkpoint are what Open replays into the
	// counters and aggregates: they stay until a checkpoint covers them.
	if cp := checkpointSeq(tx); cp < limit {
		limit, holder = cp, "checkpoint"
	}
	events := tx.Bucket(bucketEvents)
	var keys [][]byte
	done := true
	c := events.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(keys) == opts.BatchSize {
			done = false
			break
		}
		at, ok := eventTime(v)
		if !ok || !at.Before(rep.Cutoff) {
			break
		}
		if getUint64(k) > limit {
			rep.HeldBy = holder
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := events.Delete(k); err != nil {
			return 0, false, err
		}
	}
	return len(keys), done, nil
}

// exportedUpTo returns the highest sequence every named cursor has passed,
// and the name of the cursor that sets it. No names: no limit.
func exportedUpTo(b *bolt.Bucket, names []string) (uint64, string) {
	limit, holder := ^uint64(0), ""
	for _, name := range names {
		if seq := getUint64(b.Get([]byte(name))); seq < limit {
			limit, holder = seq, name
		}
	}
	return limit, holder
}

// eventTime reads an event's time without decoding the rest. A record it
// does not understand reports false and is kept.
func eventTime(v []byte) (time.Time, bool) {
	ev, err := decodeEvent(0, v)
	if err != nil {
		return time.Time{}, false
	}
	return ev.Time, true
}

// Idempotency records are keyed by account and call id, not by time, so
// finding the old ones means walking the bucket. A batch looks at a bounded
// number of keys and remembers where it stopped.
const idemScanPerBatch = 10000

func (l *Ledger) pruneIdempotency(ctx context.Context, opts PruneOptions, rep *PruneReport) error {
	var from []byte
	for {
		var n int
		var next []byte
		err := l.update(ctx, func(tx *bolt.Tx) error {
			var err error
			n, next, err = pruneIdemBatch(tx.Bucket(bucketIdem), from, rep.Cutoff, opts.BatchSize)
			return err
		})
		if err != nil {
			return err
		}
		rep.Transactions++
		rep.Idempotency += n
		if next == nil {
			return nil
		}
		from = next
	}
}

// pruneIdemBatch deletes up to max expired records at or after from and
// returns the key to resume at (nil when the bucket is done).
func pruneIdemBatch(b *bolt.Bucket, from []byte, cutoff time.Time, max int) (int, []byte, error) {
	var keys [][]byte
	var next []byte
	c := b.Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	for scanned := 0; k != nil; k, v = c.Next() {
		if len(keys) == max || scanned == idemScanPerBatch {
			next = bytes.Clone(k)
			break
		}
		scanned++
		if len(v) >= 16 && int64(binary.BigEndian.Uint64(v[8:16])) < cutoff.UnixNano() {
			keys = append(keys, bytes.Clone(k))
		}
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, nil, err
		}
	}
	return len(keys), next, nil
}

// RunPruner prunes at once and then every `every` (default 1h) until ctx
// ends or the ledger closes. Failures are logged and retried next time.
func (l *Ledger) RunPruner(ctx context.Context, every time.Duration, opts PruneOptions, log *slog.Logger) {
	if every <= 0 {
		every = time.Hour
	}
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if !l.pruneOnce(ctx, opts, log) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneOnce runs one Prune and logs it; false means stop for good.
func (l *Ledger) pruneOnce(ctx context.Context, opts PruneOptions, log *slog.Logger) bool {
	start := time.Now()
	rep, err := l.Prune(ctx, opts)
	switch {
	case ctx.Err() != nil || errors.Is(err, meter.ErrClosed):
		return false
	case err != nil:
		log.Warn("prune ledger", "error", err, "events", rep.Events, "idempotency", rep.Idempotency)
	case rep.Events > 0 || rep.Idempotency > 0:
		log.Info("pruned ledger", "events", rep.Events, "idempotency", rep.Idempotency,
			"cutoff", rep.Cutoff, "transactions", rep.Transactions, "took", time.Since(start))
	}
	if rep.HeldBy != "" {
		log.Warn("export cursor holds events past the retention window", "cursor", rep.HeldBy,
			"cutoff", rep.Cutoff)
	}
	return true
}
