package ledger

import (
	"time"
)

// retryFirst is the first backoff after a failed group; each further
// failure doubles it, up to Options.RetryMax.
const retryFirst = 10 * time.Millisecond

// hold keeps a failed group of answered writes (async appends, whose
// callers already have their 200) and retries it with exponential backoff
// until it commits. Meanwhile every new write is refused with the failure's
// class (ErrDiskFull or ErrUnavailable), so the meter gives its count
// back: live counters always equal what the ledger holds or will hold.
// Writes that were queued before the refusal began join the group if
// nobody waits for them, or get the error at once if somebody does.
//
// Only Close ends the wait without a commit: one last attempt, then the
// kept writes are lost exactly as a crash at that moment would lose them
// (the async contract), and the loss is logged.
func (l *Ledger) hold(kept []*op, err error) {
	l.stall.Store(new(stallError(err)))
	defer l.stall.Store(nil)
	log := l.opts.Logger
	log.Error("ledger commit failed; holding answered writes and refusing new ones until it succeeds",
		"pending", len(kept), "error", err)
	backoff := retryFirst
	for attempt := 1; ; attempt++ {
		l.observeRetry(len(kept), err)
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-l.quit:
			timer.Stop()
			kept = l.takeQueued(kept, err)
			if err = l.write(kept); err != nil {
				log.Error("ledger closing with a failed commit: answered writes lost",
					"lost", len(kept), "error", err)
			}
			l.observeRetry(0, nil)
			return
		}
		kept = l.takeQueued(kept, err)
		if err = l.write(kept); err == nil {
			log.Info("ledger commit recovered", "committed", len(kept), "attempts", attempt)
			l.observeRetry(0, nil)
			recycle(kept)
			return
		}
		backoff = min(2*backoff, l.opts.RetryMax)
	}
}

// takeQueued empties the queue during a hold: answered writes join kept,
// waiters are failed with err.
func (l *Ledger) takeQueued(kept []*op, err error) []*op {
	for {
		select {
		case o := <-l.queue:
			if o.done != nil {
				o.done <- err
				continue
			}
			kept = append(kept, o)
		default:
			return kept
		}
	}
}

func (l *Ledger) observeRetry(pending int, err error) {
	if ro, ok := l.opts.Observer.(RetryObserver); ok {
		ro.ObserveCommitRetry(pending, err)
	}
}

// stalled is the error a new write gets while hold runs (nil otherwise).
func (l *Ledger) stalled() error {
	if p := l.stall.Load(); p != nil {
		return *p
	}
	return nil
}
