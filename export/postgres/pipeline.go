package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/meterd/meterd/meter"
)

// flight is one batch being written to Postgres.
type flight struct {
	events []meter.Event
	start  time.Time
	done   chan flightResult
}

type flightResult struct {
	inserted int64
	err      error
}

// pipeline is the state of one drain: the next Seq to read and the
// batches in flight, oldest first.
type pipeline struct {
	target    uint64
	next      uint64
	queue     []*flight
	exhausted bool
	err       error // the first error; nothing more is launched after it
	exported  int
}

// drain exports the events after the cursor until it reaches target or no
// full batch is left, and returns the number of events exported.
//
// Up to Config.Parallel batches are written at once, each in its own
// transaction, so Postgres can use more than one core and the ledger reads
// overlap the writes. The cursor still moves strictly in order: a batch's
// commit moves it only once every earlier batch has committed and moved
// it. When a batch fails, later batches may have committed: the cursor
// stays before the failed one and they are written again on the retry,
// where the event-id key makes them change nothing.
func (e *Exporter) drain(ctx context.Context, target uint64) (int, error) {
	e.exportMu.Lock()
	defer e.exportMu.Unlock()
	cursor, err := e.log.Cursor(ctx, e.cfg.CursorName)
	if err != nil {
		return 0, wrapErr("read cursor", err)
	}
	p := &pipeline{target: target, next: cursor}
	for {
		e.fill(ctx, p)
		if len(p.queue) == 0 {
			return p.exported, p.err
		}
		f := p.queue[0]
		p.queue = p.queue[1:]
		e.land(ctx, p, f, <-f.done)
	}
}

// fill launches batches until Parallel are in flight, the ledger has no
// more events up to target, or an error has occurred.
func (e *Exporter) fill(ctx context.Context, p *pipeline) {
	for p.err == nil && !p.exhausted && p.next < p.target && len(p.queue) < e.cfg.Parallel {
		events, err := e.log.EventsAfter(ctx, p.next, e.cfg.BatchSize)
		if err != nil {
			e.fail(p, wrapErr("read events", err))
			return
		}
		if len(events) == 0 {
			p.exhausted = true
			return
		}
		e.checkGap(p.next, events[0].Seq)
		p.queue = append(p.queue, e.launch(ctx, events))
		p.next = events[len(events)-1].Seq
		p.exhausted = len(events) < e.cfg.BatchSize
	}
}

// launch writes events in a goroutine of its own.
func (e *Exporter) launch(ctx context.Context, events []meter.Event) *flight {
	f := &flight{events: events, start: time.Now(), done: make(chan flightResult, 1)}
	go func() {
		n, err := e.writeBatch(ctx, events)
		f.done <- flightResult{inserted: n, err: wrapErr("write batch", err)}
	}()
	return f
}

// land handles the oldest batch in flight once it has finished: it moves
// the cursor past it, unless it or an earlier batch failed.
func (e *Exporter) land(ctx context.Context, p *pipeline, f *flight, r flightResult) {
	if r.err != nil {
		e.fail(p, r.err)
		return
	}
	if p.err != nil {
		return // committed, but after a failed batch: replayed later
	}
	if e.afterCommitFn != nil {
		if err := e.afterCommitFn(); err != nil {
			e.fail(p, err)
			return
		}
	}
	last := f.events[len(f.events)-1].Seq
	if err := e.log.SetCursor(ctx, e.cfg.CursorName, last); err != nil {
		e.fail(p, wrapErr("advance cursor", err))
		return
	}
	p.exported += len(f.events)
	e.observeBatch(ctx, time.Since(f.start), len(f.events), r.inserted)
}

// fail records a failed batch; the first error is the drain's result.
func (e *Exporter) fail(p *pipeline, err error) {
	e.m.errors.Inc()
	e.setResult(false, err)
	if p.err == nil {
		p.err = err
	}
}

func (e *Exporter) observeBatch(ctx context.Context, d time.Duration, events int, inserted int64) {
	e.m.duration.Observe(d.Seconds())
	e.m.batches.Inc()
	e.m.rows.Add(float64(inserted))
	e.m.duplicates.Add(float64(int64(events) - inserted))
	e.setResult(true, nil)
	e.refreshBacklog(ctx) // current through a long catch-up too
	e.logger.Debug("postgres export batch", "events", events, "inserted", inserted, "duration", d)
}

// checkGap reports events missing between the cursor and the next event
// read. Only a prune that ignored this exporter's cursor can cause it;
// those events are gone and cannot be exported, so it is said loudly and
// the export goes on.
func (e *Exporter) checkGap(after, first uint64) {
	if first > after+1 {
		e.logger.Error("postgres export: ledger events missing before export (pruned?)",
			"after_seq", after, "next_seq", first, "missing", first-after-1)
	}
}

func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("postgres export: %s: %w", what, err)
}
