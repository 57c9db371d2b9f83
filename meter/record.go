package meter

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the two ways of metering a call other than Track:
// a Reservation, for a gateway that decides before forwarding and records
// once the API has answered (reverse proxy, forward auth, Go middleware),
// and RecordBatch, for calls reported after the fact (POST /v1/events).
// Both go through the same account state, under the same lock, as Track.

// Reservation is a decided call whose record waits for the API's answer.
// An allowed call counts from Reserve on, so concurrent calls can never
// pass a hard limit; Finish records it with the status and latency the
// gateway observed.
type Reservation struct {
	m      *Meter
	st     *accountState
	ev     *Event
	res    Result
	period Period
	// done makes Finish take effect once, whichever path (response,
	// upstream error, panic) reaches it first.
	done atomic.Bool
}

// Reserve decides c and counts it in memory. A denied call is recorded at
// once, without waiting for its commit (see denialWaits), and its
// Reservation is already finished. An allowed call must be finished with
// Finish. Errors mean nothing was counted. Reserved calls carry no
// idempotency id: a gateway sees each request once.
func (m *Meter) Reserve(ctx context.Context, c Call) (*Reservation, error) {
	if c.ID != "" {
		return nil, Invalid("id", "is not supported on reserved calls; use Track")
	}
	st, key, err := m.resolve(c)
	if err != nil {
		return nil, err
	}
	ev, err := m.newEvent(c, st.id, key)
	if err != nil {
		return nil, err
	}
	r := &Reservation{m: m, st: st, ev: ev}
	now := m.now().UTC()
	g, err := m.takeAllowance(ctx, st, now)
	if err != nil {
		return nil, err
	}
	r.res, r.period = m.decideEvent(st, ev, now, g)
	if r.res.Allowed {
		return r, nil
	}
	r.done.Store(true)
	if err := m.appendEvent(ctx, st, ev, !m.async && denialWaits(ev)); err != nil {
		return nil, err
	}
	return r, nil
}

// Result is the decision.
func (r *Reservation) Result() Result { return r.res }

// Period is the billing period the call was counted in.
func (r *Reservation) Period() Period { return r.period }

// Finish records the allowed call with the HTTP status the API answered
// (0 if unknown) and its latency, waiting for the commit unless the meter
// is async. Only the first Finish has an effect. If the ledger fails the
// count is given back and the error returned.
func (r *Reservation) Finish(ctx context.Context, status int, latency time.Duration) error {
	if !r.done.CompareAndSwap(false, true) {
		return nil
	}
	if status < 0 || status > 999 {
		status = 0
	}
	r.ev.Status = status
	r.ev.LatencyMicros = min(max(latency.Microseconds(), 0), int64(time.Hour/time.Microsecond))
	return r.m.appendEvent(ctx, r.st, r.ev, !r.m.async)
}

// decideEvent is the decision of record() without the append: check and
// count under the account's lock, then stamp ev with the outcome.
func (m *Meter) decideEvent(st *accountState, ev *Event, now time.Time, g grant) (Result, Period) {
	st.mu.Lock()
	st.rollLocked(now)
	before := st.countsLocked()
	allowed, overage := st.decideGrantedLocked(g)
	ev.Notices = m.noticesLocked(st, before, now)
	ev.Endpoint = st.endpointLocked(ev.Endpoint, m.maxEndpoints, endpointSeeder{m})
	if now.After(st.lastCallAt) {
		st.lastCallAt = now
	}
	ev.PeriodStart, ev.Plan = st.period.Start, st.plan.Name
	res, period := resultLocked(st, allowed, overage), st.period
	StampOverage(ev, st.plan, overage)
	st.mu.Unlock()
	ev.Time, ev.Decision = now, decisionOf(allowed)
	if g.asked { // cluster mode: the cluster's refusal leaves nothing here
		m.settleGrant(g, ev.AccountID, allowed, period.Start)
		if !allowed {
			res.Remaining = 0
		}
	}
	m.withPeersResult(&res) // cluster mode: answer for the whole cluster
	return res, period
}

// appendEvent hands a decided event to the store; if the store fails, the
// decision is undone so the call is neither counted nor acknowledged.
func (m *Meter) appendEvent(ctx context.Context, st *accountState, ev *Event, wait bool) error {
	if err := m.store.Append(ctx, ev, wait); err != nil {
		m.undoAppend(st, ev)
		return err
	}
	return nil
}

// undoAppend gives back the count of an event the store refused.
func (m *Meter) undoAppend(st *accountState, ev *Event) {
	st.mu.Lock()
	st.undoLocked(ev)
	st.oweLocked(ev.Notices) // notice.go
	st.mu.Unlock()
	m.giveBackUndone(st, ev)
}

// BatchCall is one call reported after the fact.
type BatchCall struct {
	// Call.ID is required: it is how a resent event is recognised.
	Call
	// Time is when the call was made (zero: now). It must fall in the
	// account's open period and be at most MaxEventSkew ahead of the
	// meter's clock.
	Time time.Time
}

// MaxEventSkew is how far ahead of the meter's clock a batch event's time
// may be, for clients whose clocks run fast.
const MaxEventSkew = 5 * time.Minute

// BatchOutcome is what became of one BatchCall.
type BatchOutcome struct {
	// Duplicate: the id was already recorded for the account (earlier in
	// the batch, by Track, or by an earlier batch); nothing was counted.
	Duplicate bool
	// Err says why the call was rejected: a *ValidationError,
	// ErrUnknownKey or ErrAccountNotFound. Nil if accepted or duplicate.
	Err error
	// EventID is the recorded event (for a duplicate, the first one's).
	EventID string
}

// Accepted reports whether the call was recorded and counted.
func (o BatchOutcome) Accepted() bool { return o.Err == nil && !o.Duplicate }

// batchItem is one BatchCall on its way to the ledger.
type batchItem struct {
	st *accountState
	ev *Event
	// key identifies the id in the in-flight table: account \0 id.
	key string
	// first is the index of the first item with the same key in the
	// batch (the item's own index if it is the first), -1 if rejected.
	first int
	// call is the in-flight entry: ours if mine, else another caller's.
	call *inflightCall
	mine bool
}

// maxBatchRounds bounds how often a batch retries ids whose concurrent
// first caller failed to record them.
const maxBatchRounds = 3

// RecordBatch records calls that already happened: each counts as usage
// (and as overage past a soft limit) but is never denied, even past a
// hard limit. Ids are deduplicated through the same idempotency records
// and in-flight table as Track. It returns once every accepted call is
// committed, whatever the meter's durability mode, so an acknowledged
// batch is on disk.
//
// Per-call problems are reported in the outcomes. An error means the
// ledger (or ctx) failed: some calls may have been recorded, and resending
// the batch reports those as duplicates and records the rest.
func (m *Meter) RecordBatch(ctx context.Context, calls []BatchCall) ([]BatchOutcome, error) {
	out := make([]BatchOutcome, len(calls))
	items := make([]batchItem, len(calls))
	todo := m.prepareBatch(calls, items, out)
	for round := 0; len(todo) > 0; round++ {
		if round == maxBatchRounds {
			return nil, fmt.Errorf("record batch: concurrent calls with the same ids kept failing")
		}
		var err error
		if todo, err = m.batchRound(ctx, items, out, todo); err != nil {
			return nil, fmt.Errorf("record batch: %w", err)
		}
	}
	for i := range items {
		if f := items[i].first; f >= 0 && f != i {
			out[i] = BatchOutcome{Duplicate: out[f].Err == nil, Err: out[f].Err, EventID: out[f].EventID}
		}
	}
	return out, nil
}

// prepareBatch validates every call and returns the indexes of the first
// occurrence of each id; the other occurrences are duplicates of it.
func (m *Meter) prepareBatch(calls []BatchCall, items []batchItem, out []BatchOutcome) []int {
	now := m.now().UTC()
	seen := make(map[string]int, len(calls))
	todo := make([]int, 0, len(calls))
	for i := range calls {
		it, err := m.prepareCall(calls[i], now)
		if err != nil {
			out[i].Err, items[i].first = err, -1
			continue
		}
		if f, ok := seen[it.key]; ok {
			it.first = f
		} else {
			seen[it.key], it.first = i, i
			todo = append(todo, i)
		}
		items[i] = it
	}
	return todo
}

func (m *Meter) prepareCall(c BatchCall, now time.Time) (batchItem, error) {
	if c.ID == "" {
		return batchItem{}, Invalid("id", "is required")
	}
	st, key, err := m.resolve(c.Call)
	if err != nil {
		return batchItem{}, err
	}
	ev, err := m.newEvent(c.Call, st.id, key)
	if err != nil {
		return batchItem{}, err
	}
	ev.Time = c.Time.UTC()
	if c.Time.IsZero() {
		ev.Time = now
	}
	if ev.Time.After(now.Add(MaxEventSkew)) {
		return batchItem{}, Invalid("timestamp", "is more than %s ahead of the meter's clock", MaxEventSkew)
	}
	st.mu.Lock()
	st.rollLocked(now)
	period := st.period
	st.mu.Unlock()
	if err := checkInPeriod(period, ev.Time); err != nil {
		return batchItem{}, err
	}
	return batchItem{st: st, ev: ev, key: st.id + "\x00" + c.ID}, nil
}

func checkInPeriod(p Period, t time.Time) error {
	if p.Contains(t) {
		return nil
	}
	return Invalid("timestamp", "%s is outside the account's open period [%s, %s)",
		t.Format(time.RFC3339), p.Start.Format(time.RFC3339), p.End.Format(time.RFC3339))
}

// batchRound claims the ids in todo, records those it claimed, then waits
// for the ids other callers hold. Our own claims are all finished before
// we wait for anyone, so two batches holding each other's ids cannot
// deadlock. It returns the ids whose other caller failed, to retry.
func (m *Meter) batchRound(ctx context.Context, items []batchItem, out []BatchOutcome, todo []int) ([]int, error) {
	var mine, others []int
	for _, i := range todo {
		items[i].call, items[i].mine = m.inflight.join(items[i].key)
		if items[i].mine {
			mine = append(mine, i)
		} else {
			others = append(others, i)
		}
	}
	if err := m.recordClaimed(ctx, items, out, mine); err != nil {
		return nil, err
	}
	var retry []int
	for _, i := range others {
		c := items[i].call
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err != nil {
			retry = append(retry, i)
			continue
		}
		out[i] = BatchOutcome{Duplicate: true, EventID: c.res.EventID}
	}
	return retry, nil
}

// recordClaimed records the claimed ids the ledger does not know yet and
// finishes every claim, whatever happens.
func (m *Meter) recordClaimed(ctx context.Context, items []batchItem, out []BatchOutcome, mine []int) error {
	fresh, err := m.dedupeClaimed(ctx, items, out, mine)
	if err != nil {
		return err
	}
	now := m.now().UTC()
	results := make([]Result, len(items))
	counted := fresh[:0]
	for _, i := range fresh {
		it := &items[i]
		res, err := m.countEvent(it.st, it.ev, now)
		if err != nil {
			out[i].Err = err
			m.inflight.finish(it.key, it.call, Result{}, err)
			continue
		}
		results[i] = res
		counted = append(counted, i)
	}
	errs := m.appendAll(ctx, items, counted)
	var first error
	for n, i := range counted {
		it := &items[i]
		if errs[n] != nil {
			first = cmpErr(first, errs[n])
			m.inflight.finish(it.key, it.call, Result{}, errs[n])
			continue
		}
		results[i].EventID = it.ev.ID()
		out[i] = BatchOutcome{EventID: results[i].EventID}
		m.inflight.finish(it.key, it.call, results[i], nil)
	}
	return first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// dedupeClaimed looks each claimed id up in the ledger: known ones are
// duplicates (claim finished with the first answer), the rest are
// returned. On a lookup error every claim is finished with it.
func (m *Meter) dedupeClaimed(ctx context.Context, items []batchItem, out []BatchOutcome, mine []int) ([]int, error) {
	fresh := make([]int, 0, len(mine))
	for n, i := range mine {
		it := &items[i]
		rec, found, err := m.store.Idempotency(ctx, it.st.id, it.ev.IdempotencyKey)
		if err != nil {
			for _, j := range mine[n:] {
				m.inflight.finish(items[j].key, items[j].call, Result{}, err)
			}
			for _, j := range fresh {
				m.inflight.finish(items[j].key, items[j].call, Result{}, err)
			}
			return nil, err
		}
		if !found {
			fresh = append(fresh, i)
			continue
		}
		res := m.duplicateResult(it.st, rec)
		out[i] = BatchOutcome{Duplicate: true, EventID: res.EventID}
		m.inflight.finish(it.key, it.call, res, nil)
	}
	return fresh, nil
}

// duplicateResult is the answer for an id the ledger already holds, as
// trackFirst gives it.
func (m *Meter) duplicateResult(st *accountState, rec IdempotencyRecord) Result {
	st.mu.Lock()
	st.rollLocked(m.now().UTC())
	res := resultLocked(st, rec.Decision == Allowed, rec.Overage)
	st.mu.Unlock()
	res.Duplicate, res.EventID = true, EventID(rec.Node, rec.Seq)
	return res
}

// countEvent counts a call reported after the fact: never denied, and
// stamped with its own time, which must still fall in the open period
// (the period may have rolled since prepareCall checked it).
func (m *Meter) countEvent(st *accountState, ev *Event, now time.Time) (Result, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rollLocked(now)
	if err := checkInPeriod(st.period, ev.Time); err != nil {
		return Result{}, err
	}
	before := st.countsLocked()
	overage := st.countLocked()
	ev.Notices = m.noticesLocked(st, before, ev.Time)
	ev.Endpoint = st.endpointLocked(ev.Endpoint, m.maxEndpoints, endpointSeeder{m})
	if ev.Time.After(st.lastCallAt) {
		st.lastCallAt = ev.Time
	}
	ev.PeriodStart, ev.Decision, ev.Plan = st.period.Start, Allowed, st.plan.Name
	StampOverage(ev, st.plan, overage)
	return resultLocked(st, true, overage), nil
}

// countLocked counts one call without a check: a reported call has
// already happened, so a hard limit cannot refuse it.
func (s *accountState) countLocked() (overage bool) {
	before := s.contributionLocked()
	defer func() { s.totals.move(before, s.contributionLocked()) }()
	return s.countAllowedLocked()
}

// appendAll appends the events at idx and waits for their commits. The
// appends are queued together, so they share one or a few group commits,
// and each one's own outcome is known (a failed commit undoes its count).
func (m *Meter) appendAll(ctx context.Context, items []batchItem, idx []int) []error {
	if bs, ok := m.store.(BatchStore); ok {
		evs := make([]*Event, len(idx))
		for n, i := range idx {
			evs[n] = items[i].ev
		}
		errs := bs.AppendAll(ctx, evs)
		for n, i := range idx {
			if errs[n] != nil {
				m.undoAppend(items[i].st, items[i].ev)
			}
		}
		return errs
	}
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for n, i := range idx {
		it := &items[i]
		wg.Go(func() { errs[n] = m.appendEvent(ctx, it.st, it.ev, true) })
	}
	wg.Wait()
	return errs
}
