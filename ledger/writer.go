package ledger

import (
	"context"
	"encoding/binary"
	"runtime"
	"sync"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// op is one unit of work for the writer: an event to record, or a
// function to run inside the next transaction. fn must fail only on storage
// errors: an error aborts the whole group commit, so validation belongs
// before the op is queued.
type op struct {
	ev   *meter.Event
	val  []byte // ev encoded by the producer, off the writer's critical path
	fn   func(tx *bolt.Tx) error
	done chan error // nil: nobody waits (async append)
}

// Ops of appends are pooled with their encoding buffer: bbolt holds a
// value slice only until the commit, so once the writer is done with an
// op (the waiter woke, or the answered op committed) both are reused.
// waitPool's ops carry a done channel; answeredPool's do not.
var (
	waitPool     = sync.Pool{New: func() any { return &op{done: make(chan error, 1)} }}
	answeredPool = sync.Pool{New: func() any { return &op{} }}
)

// Append implements meter.Store. With wait it returns once the commit
// holding ev is durable; ev.Seq and ev.Node are then set.
func (l *Ledger) Append(ctx context.Context, ev *meter.Event, wait bool) error {
	ev.Node = l.node
	pool := &answeredPool
	if wait {
		pool = &waitPool
	}
	o := pool.Get().(*op)
	o.ev, o.fn, o.val = ev, nil, encodeEvent(o.val[:0], ev)
	if err := l.enqueue(o); err != nil {
		o.ev = nil
		pool.Put(o)
		return err
	}
	if !wait {
		return nil // the writer recycles o after its commit
	}
	// The commit is waited for even if ctx ends: the op is already queued
	// and its done channel must be drained before the op is reused.
	err := <-o.done
	o.ev = nil
	waitPool.Put(o)
	return err
}

var _ meter.BatchStore = (*Ledger)(nil)

// AppendAll implements meter.BatchStore: it queues evs in their order, so
// they commit in that order (a batch's notices reach the outbox in the
// order they were counted), then waits for every commit. errs[i] is ev[i]'s.
func (l *Ledger) AppendAll(ctx context.Context, evs []*meter.Event) []error {
	errs := make([]error, len(evs))
	ops := make([]*op, len(evs))
	for i, ev := range evs {
		ev.Node = l.node
		o := waitPool.Get().(*op)
		o.ev, o.fn, o.val = ev, nil, encodeEvent(o.val[:0], ev)
		if errs[i] = l.enqueue(o); errs[i] != nil {
			o.ev = nil
			waitPool.Put(o)
			continue
		}
		ops[i] = o
	}
	for i, o := range ops {
		if o == nil {
			continue
		}
		errs[i] = <-o.done // drained even if ctx ends: the op is queued
		o.ev = nil
		waitPool.Put(o)
	}
	return errs
}

// recycle returns committed answered appends to their pool.
func recycle(batch []*op) {
	for _, o := range batch {
		if o.done == nil && o.ev != nil {
			o.ev = nil
			answeredPool.Put(o)
		}
	}
}

// update runs fn in the writer's next transaction and waits for it to
// commit. It is how every non-event write reaches the file.
func (l *Ledger) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o := &op{fn: fn, done: make(chan error, 1)}
	if err := l.enqueue(o); err != nil {
		return err
	}
	return <-o.done
}

func (l *Ledger) enqueue(o *op) error {
	// The disk floor is checked here, once, before a write is queued: a
	// write already queued may have been acknowledged (async), so the
	// writer commits it; the floor's margin is what it spends.
	if err := l.checkDiskFloor(); err != nil {
		return err
	}
	if err := l.stalled(); err != nil {
		return err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return meter.ErrClosed
	}
	select {
	case l.queue <- o:
		return nil
	default:
		return meter.ErrOverloaded
	}
}

// QueueDepth is the number of writes waiting for the writer.
func (l *Ledger) QueueDepth() int { return len(l.queue) }

// run is the writer goroutine: it owns every read-write transaction.
func (l *Ledger) run() {
	defer close(l.done)
	batch := make([]*op, 0, l.opts.MaxBatch)
	last := 0
	tick := time.NewTicker(min(l.opts.CheckpointInterval, time.Second))
	defer tick.Stop()
	for {
		select {
		case req := <-l.cpReq:
			req <- l.checkpointIfAny()
		case <-tick.C:
			if l.checkpointDue() {
				_ = l.checkpoint() // logged; its deltas stay in memory
			}
		case o := <-l.queue:
			// gather first, linger second: when an answered write (a
			// denial, an async call) opens the group and a waiter then
			// closes it, the waiter's cohort must still get its chance
			// to join, or a trickle of denials splits sync load into
			// tiny groups, one fsync each.
			batch = l.gather(l.fill(append(batch[:0], o)))
			batch = l.linger(batch, last)
			last = len(batch)
			l.commit(batch)
			if l.checkpointDue() {
				_ = l.checkpoint()
			}
		case <-l.quit:
			l.drain(batch)
			return
		}
	}
}

// lingerRounds bounds how often the writer yields, waiting for a group to
// fill, before it commits what it has: each round is one scheduler pass
// (microseconds), far less than the fsync it saves.
const lingerRounds = 8

// linger lets the callers woken by the previous commit queue their next
// writes before this group commits. Without it, a steady load splits into
// two cohorts that alternate, each committing half as many writes per
// fsync as it could. It only waits while the group is smaller than the
// previous one, so a light load is never delayed.
func (l *Ledger) linger(batch []*op, last int) []*op {
	for i := 0; i < lingerRounds && len(batch) < last && len(batch) < l.opts.MaxBatch; i++ {
		runtime.Gosched()
		batch = l.fill(batch)
	}
	return batch
}

// gather holds a group in which nobody waits (async appends only) open for
// up to AsyncDelay, so async load commits in few large transactions
// instead of many small fsyncs. A waiter arriving ends the wait at once.
func (l *Ledger) gather(batch []*op) []*op {
	if l.opts.AsyncDelay <= 0 || hasWaiter(batch) {
		return batch
	}
	timer := time.NewTimer(l.opts.AsyncDelay)
	defer timer.Stop()
	for len(batch) < l.opts.MaxBatch {
		select {
		case o := <-l.queue:
			batch = append(batch, o)
			if o.done != nil {
				return l.fill(batch)
			}
		case <-timer.C:
			return l.fill(batch)
		case <-l.quit:
			return batch
		}
	}
	return batch
}

func hasWaiter(batch []*op) bool {
	for _, o := range batch {
		if o.done != nil {
			return true
		}
	}
	return false
}

// fill adds whatever else is queued, up to MaxBatch, without waiting: the
// group grows with load instead of with a timer.
func (l *Ledger) fill(batch []*op) []*op {
	for len(batch) < l.opts.MaxBatch {
		select {
		case o := <-l.queue:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// drain commits everything queued before Close, then checkpoints so the
// next Open has nothing to replay.
func (l *Ledger) drain(batch []*op) {
	for len(l.queue) > 0 {
		batch = l.fill(batch[:0])
		l.commit(batch)
	}
	_ = l.checkpointIfAny()
}

// commit writes one group in one transaction and reports the outcome to
// every waiter. On failure nothing of the group is stored and the sequence
// is not advanced: waiters get the error (their calls were never answered,
// so the meter gives their counts back), and the writes nobody waits for —
// already answered — are kept and retried until they commit (retry.go).
func (l *Ledger) commit(batch []*op) {
	err := l.write(batch)
	kept := batch[:0]
	for _, o := range batch {
		switch {
		case o.done != nil:
			o.done <- err
		case err != nil:
			kept = append(kept, o)
		}
	}
	if len(kept) > 0 {
		l.hold(kept, err)
		return
	}
	if err == nil {
		recycle(batch)
	}
}

// write is one attempt at committing batch.
func (l *Ledger) write(batch []*op) error {
	start := time.Now()
	seq := l.lastSeq.Load()
	var plan *denialPlan // coalesce.go
	if !l.opts.noCoalesce {
		plan = planDenials(batch)
	}
	err := l.db.Update(func(tx *bolt.Tx) error {
		next, err := l.applyBatch(tx, batch, plan, seq)
		if err != nil {
			return err
		}
		seq = next
		if fn := l.beforeCommit.Load(); fn != nil {
			return (*fn)()
		}
		return nil
	})
	if err != nil {
		err = commitError(err)
	} else {
		l.lastSeq.Store(seq)
		l.fold(batch, plan)
	}
	if obs := l.opts.Observer; obs != nil {
		obs.ObserveCommit(len(batch), time.Since(start), err)
	}
	return err
}

// applyBatch writes the group's events and idempotency records (a
// group's answered denials coalesced, coalesce.go): nothing else, so a commit's pages are the events' own (counters and aggregates
// follow in memory, and reach the file at the next checkpoint).
func (l *Ledger) applyBatch(tx *bolt.Tx, batch []*op, plan *denialPlan, seq uint64) (uint64, error) {
	events := tx.Bucket(bucketEvents)
	events.FillPercent = 1 // append-only by seq: pack pages full
	idem := tx.Bucket(bucketIdem)
	keys := make([]byte, 0, 8*len(batch)) // one allocation for every key
	for i, o := range batch {
		if o.fn != nil {
			if err := o.fn(tx); err != nil {
				return 0, err
			}
			continue
		}
		into, val := plan.record(i, o)
		if val == nil { // a denial stored in an earlier op's record
			o.ev.Seq = batch[into].ev.Seq
			continue
		}
		seq++
		o.ev.Seq = seq
		// bbolt keeps key and value slices until commit: keys are carved
		// from one buffer sized up front so appends never move it.
		keys = binary.BigEndian.AppendUint64(keys, seq)
		if err := events.Put(keys[len(keys)-8:], val); err != nil {
			return 0, err
		}
		if err := putIdempotency(idem, o.ev); err != nil {
			return 0, err
		}
		if o.ev.Notices != nil { // webhook outbox, same transaction (outbox.go)
			if err := putEventNotices(tx, o.ev); err != nil {
				return 0, err
			}
		}
	}
	return seq, nil
}

// fold adds a committed group's events to the in-memory aggregates, each
// coalesced denial record once, as a replay of the file would.
func (l *Ledger) fold(batch []*op, plan *denialPlan) {
	l.aggMu.Lock()
	defer l.aggMu.Unlock()
	for i, o := range batch {
		if o.ev != nil {
			if ev := plan.stored(i, o); ev != nil {
				l.live.add(ev)
			}
		}
	}
}
