package meter

import (
	"sync"
	"time"
)

// accountState is one account's live quota state. Its mutex makes the
// check and the count one atomic step.
type accountState struct {
	mu         sync.Mutex
	acct       Account
	plan       Plan
	period     Period
	calls      int64
	overage    int64
	denied     int64
	lastCallAt time.Time
	// endpoints holds the distinct endpoint templates seen (for the cap).
	endpoints map[string]struct{}
	// totals is told about every change of the account's contribution to
	// the overview (nil: nobody listens).
	totals *overviewTotals
	// owed are notices whose call failed to commit although the line stays
	// crossed; the account's next call carries them (notice.go).
	owed []Notice
}

// rollLocked moves the state into the period containing now. It never
// moves backwards, so a clock that steps back across a boundary cannot
// reset a quota a second time.
func (s *accountState) rollLocked(now time.Time) {
	if now.Before(s.period.End) {
		return // the common case: still inside (or, clock stepped back, before) the period
	}
	p := PeriodAt(s.acct.Anchor(), now)
	if !p.Start.After(s.period.Start) {
		return
	}
	s.period = p
	s.calls, s.overage, s.denied = 0, 0, 0
	s.endpoints = nil // the cap is per period
}

// decideLocked checks and counts one call, and keeps the overview's
// running totals in step when the call changes the account's share.
func (s *accountState) decideLocked() (allowed, overage bool) {
	if !s.shareMayMoveLocked() {
		return s.checkAndCountLocked()
	}
	before := s.contributionLocked()
	allowed, overage = s.checkAndCountLocked()
	s.totals.move(before, s.contributionLocked())
	return allowed, overage
}

// shareMayMoveLocked reports whether the next decision can change the
// account's contribution to the overview: only at the 80% line, past the
// limit (overage cents, the first denial) — never for the bulk of calls,
// which keeps the hot path free of that bookkeeping.
func (s *accountState) shareMayMoveLocked() bool {
	p := s.plan
	if s.totals == nil || p.Unlimited() {
		return false
	}
	if s.calls >= p.Limit {
		return !p.Hard || s.denied == 0
	}
	line := p.Limit * NearLimitPercent
	return (s.calls+1)*100 >= line && s.calls*100 < line
}

// checkAndCountLocked is the decision itself.
func (s *accountState) checkAndCountLocked() (allowed, overage bool) {
	if s.plan.Hard && !s.plan.Unlimited() && s.calls >= s.plan.Limit {
		s.denied++
		return false, false
	}
	s.calls++
	overage = !s.plan.Hard && !s.plan.Unlimited() && s.calls > s.plan.Limit
	if overage {
		s.overage++
	}
	return true, overage
}

// undoLocked reverses decideLocked after the ledger failed to record the
// call, unless the period has moved on meanwhile.
func (s *accountState) undoLocked(period time.Time, allowed, overage bool) {
	if !s.period.Start.Equal(period) {
		return
	}
	before := s.contributionLocked()
	defer func() { s.totals.move(before, s.contributionLocked()) }()
	switch {
	case !allowed:
		s.denied--
	case overage:
		s.calls--
		s.overage--
	default:
		s.calls--
	}
}

// endpointLocked applies the per-account, per-period cap on distinct
// templates. The first call of a period (or after a restart) seeds the set
// from what the store already holds for the period, so a restart does not
// open room for another max templates.
func (s *accountState) endpointLocked(tmpl string, max int, seed endpointSeeder) string {
	if s.endpoints == nil {
		s.endpoints = seed.seed(s.acct.ID, s.period)
	}
	if _, ok := s.endpoints[tmpl]; ok {
		return tmpl
	}
	if len(s.endpoints) >= max {
		return OtherEndpoint
	}
	s.endpoints[tmpl] = struct{}{}
	return tmpl
}

// snapshotLocked returns the quota view of the state.
func (s *accountState) snapshotLocked() Quota {
	q := Quota{Account: s.acct, Plan: s.plan, Period: s.period, Calls: s.calls,
		Overage: s.overage, Denied: s.denied, LastCallAt: s.lastCallAt}
	return q
}

// Quota is an account's usage in its current period, as the meter sees it.
type Quota struct {
	Account    Account
	Plan       Plan
	Period     Period
	Calls      int64
	Overage    int64
	Denied     int64
	LastCallAt time.Time
}

// Remaining is the calls left before the limit (0 for unlimited plans).
func (q Quota) Remaining() int64 { return Remaining(q.Plan, q.Calls) }

// OverageCostCents is the period's overage cost so far, in whole cents.
func (q Quota) OverageCostCents() int64 {
	return OverageCostCents(q.Overage, q.Plan.OverageMicros)
}

// UsagePercentage is calls as a percentage of the limit.
func (q Quota) UsagePercentage() float64 { return UsagePercentage(q.Plan, q.Calls) }
