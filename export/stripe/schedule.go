package stripe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meterd/meterd/meter"
	"github.com/robfig/cron/v3"
)

// ParseSchedule checks a cron expression (five fields, or a descriptor
// such as @daily or @every 1h), evaluated in UTC; empty means
// DefaultSchedule.
func ParseSchedule(spec string) (cron.Schedule, error) {
	if spec == "" {
		spec = DefaultSchedule
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("billing schedule %q: %w", spec, err)
	}
	return sched, nil
}

// Schedule runs billing in the background at every time spec names (UTC;
// empty means daily at 00:00 UTC) until ctx ends. The returned channel is
// closed once the loop has stopped and any run in progress has finished;
// wait for it before closing the ledger.
func (s *Service) Schedule(ctx context.Context, spec string) (<-chan struct{}, error) {
	sched, err := ParseSchedule(spec)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.loop(ctx, sched)
	}()
	return done, nil
}

// loop sleeps until the next scheduled time, runs, and repeats. The next
// time is computed after every run from the later of the clock and the
// slot just run, so a slow run never falls behind and a wall clock that
// steps back never runs one slot twice.
func (s *Service) loop(ctx context.Context, sched cron.Schedule) {
	var last time.Time
	s.catchUp(ctx, sched)
	for {
		now := s.now()
		slot := sched.Next(laterOf(now, last))
		timer := time.NewTimer(slot.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		last = slot
		if done, err := s.cfg.Store.LastBillingRun(ctx); err == nil && !done.Before(slot) {
			// Another process sharing the store (a cluster node) already
			// ran this slot.
			continue
		}
		_, err := s.Run(ctx)
		switch {
		case errors.Is(err, meter.ErrBillingBusy):
			s.cfg.Logger.Info("scheduled billing run skipped: another run is in progress")
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.Error("scheduled billing run failed", "error", err)
		}
	}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// catchUp runs billing at once when a scheduled run was missed while no
// process was running: the slot after the last completed run is already
// past. On a ledger that never completed a run, the first start records
// now as the baseline, so a slot missed from then on is caught up.
func (s *Service) catchUp(ctx context.Context, sched cron.Schedule) {
	last, err := s.cfg.Store.LastBillingRun(ctx)
	if err != nil {
		return
	}
	if last.IsZero() {
		if err := s.cfg.Store.RecordBillingRun(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("recording the billing schedule's baseline failed", "error", err)
		}
		return
	}
	missed := sched.Next(last)
	if missed.After(s.now()) {
		return
	}
	s.cfg.Logger.Info("a scheduled billing run was missed; running it now", "missed", missed, "last_run", last)
	if _, err := s.Run(ctx); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Error("catch-up billing run failed", "error", err)
	}
}
