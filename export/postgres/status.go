package postgres

import (
	"context"
	"fmt"
	"time"
)

// Status is the exporter's state for /readyz detail and operators.
type Status struct {
	// BacklogEvents counts ledger events not yet in Postgres.
	BacklogEvents uint64
	// Lag is the age of the oldest of them (0 when none).
	Lag time.Duration
	// OverBound reports BacklogEvents > Config.MaxBacklog: Postgres has
	// been unreachable for long and the ledger is growing; act before the
	// disk fills. Metering goes on regardless.
	OverBound bool
	// LastExport is when a batch last committed (zero if never, in this
	// process).
	LastExport time.Time
	// LastError is the error of the latest attempt ("" if it succeeded).
	LastError string
}

// Backlog reports how many ledger events are not yet exported and how old
// the oldest of them is. Sequence numbers are dense, so the count is the
// newest Seq minus the cursor.
func (e *Exporter) Backlog(ctx context.Context) (events uint64, lag time.Duration, err error) {
	last, err := e.log.LastSeq(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres export: backlog: %w", err)
	}
	cursor, err := e.log.Cursor(ctx, e.cfg.CursorName)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres export: backlog: %w", err)
	}
	if last <= cursor {
		return 0, 0, nil
	}
	oldest, err := e.log.EventsAfter(ctx, cursor, 1)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres export: backlog: %w", err)
	}
	if len(oldest) == 1 {
		lag = max(e.cfg.Now().Sub(oldest[0].Time), 0)
	}
	return last - cursor, lag, nil
}

// Status returns the backlog and the outcome of the latest attempt.
func (e *Exporter) Status(ctx context.Context) (Status, error) {
	events, lag, err := e.Backlog(ctx)
	if err != nil {
		return Status{}, err
	}
	s := Status{BacklogEvents: events, Lag: lag, OverBound: events > e.cfg.MaxBacklog}
	e.mu.Lock()
	defer e.mu.Unlock()
	s.LastExport = e.lastExport
	if e.lastErr != nil {
		s.LastError = e.lastErr.Error()
	}
	return s, nil
}

// refreshBacklog updates the backlog gauges and returns the backlog (0 if
// the ledger could not be read; the gauges then keep their last value).
func (e *Exporter) refreshBacklog(ctx context.Context) uint64 {
	// The read is short and local; finishing it even when ctx has just
	// ended keeps the gauges true to the last batch exported.
	events, lag, err := e.Backlog(context.WithoutCancel(ctx))
	if err != nil {
		return 0
	}
	e.m.backlog.Set(float64(events))
	e.m.lag.Set(lag.Seconds())
	over := events > e.cfg.MaxBacklog
	e.mu.Lock()
	crossed := over != e.overBound
	e.overBound = over
	e.mu.Unlock()
	// Log the crossings only: the gauges carry the rest.
	switch {
	case crossed && over:
		e.logger.Error("postgres export backlog over bound; the ledger keeps every event and grows",
			"backlog_events", events, "max_backlog", e.cfg.MaxBacklog, "lag", lag)
	case crossed:
		e.logger.Info("postgres export backlog back under bound", "backlog_events", events)
	}
	return events
}

// setResult records the outcome of an export attempt for Status.
func (e *Exporter) setResult(committed bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastErr = err
	if committed {
		e.lastExport = e.cfg.Now()
	}
}
