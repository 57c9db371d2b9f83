package meter

import (
	"sync"
	"time"
)

// accountState is one account's live quota state. Its mutex makes the
// check and the count one atomic step.
type accountState struct {
	// id is the account's id, set once at creation and never changed, so
	// it is read without mu (acct, which holds it too, is replaced under
	// mu by admin changes and replication).
	id      string
	mu      sync.Mutex
	acct    Account
	plan    Plan
	period  Period
	calls   int64
	overage int64
	// overageMicros sums the overage calls' prices (Counter.OverageMicros).
	overageMicros int64
	denied        int64
	lastCallAt    time.Time
	// endpoints holds the distinct endpoint templates seen (for the cap).
	endpoints map[string]struct{}
	// totals is told about every change of the account's contribution to
	// the overview (nil: nobody listens).
	totals *overviewTotals
	// plans resolves a scheduled plan change when it falls due.
	plans *Plans
	// owed are notices whose call failed to commit although the line stays
	// crossed; the account's next call carries them (notice.go).
	owed []Notice
	// planDue is the account.plan_changed notice of a scheduled plan
	// change put in force here but not yet stored (planchange.go).
	planDue *Notice
}

// newAccountState is the live state of account a on plan, in period.
func (m *Meter) newAccountState(a Account, plan Plan, period Period) *accountState {
	return &accountState{id: a.ID, acct: a, plan: plan, period: period, totals: m.totals, plans: m.plans}
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
	s.calls, s.overage, s.overageMicros, s.denied = 0, 0, 0, 0
	s.endpoints = nil // the cap is per period
	s.applyPlanChangeLocked(now)
}

// applyPlanChangeLocked puts a scheduled plan change in force once it is
// due (the stored account keeps it pending until its next write; the rule
// gives the same answer on every load).
func (s *accountState) applyPlanChangeLocked(now time.Time) {
	a, due := s.acct.ApplyDuePlanChange(now)
	if !due || s.plans == nil {
		return
	}
	plan, ok := s.plans.Get(a.Plan)
	if !ok {
		return // the plan left the plans file; keep deciding by the old one
	}
	before := contribution{plan: s.plan.Name, price: s.plan.Price(&s.acct)}
	s.planDue = scheduledPlanNotice(s.acct, a, s.period, s.calls)
	s.acct, s.plan = a, plan
	s.totals.move(before, contribution{plan: s.plan.Name, price: s.plan.Price(&s.acct)})
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
	if s.acct.Blocked() {
		return s.denied == 0
	}
	if s.calls >= p.Limit {
		return !p.Hard || s.denied == 0
	}
	line := p.Limit * NearLimitPercent
	return (s.calls+1)*100 >= line && s.calls*100 < line
}

// checkAndCountLocked is the decision itself.
func (s *accountState) checkAndCountLocked() (allowed, overage bool) {
	if s.acct.Blocked() {
		s.denied++
		return false, false
	}
	if s.plan.Hard && !s.plan.Unlimited() && s.calls >= s.plan.Limit {
		s.denied++
		return false, false
	}
	return true, s.countAllowedLocked()
}

// countAllowedLocked counts one allowed call by the counting rule, priced
// at the plan in force now.
func (s *accountState) countAllowedLocked() (overage bool) {
	s.calls++
	overage = IsOverageCall(s.plan, s.calls)
	if overage {
		s.overage++
		s.overageMicros += OveragePriceMicros(s.plan)
	}
	return overage
}

// undoLocked reverses the count of ev after the ledger failed to record
// it, unless the period has moved on meanwhile.
func (s *accountState) undoLocked(ev *Event) {
	if !s.period.Start.Equal(ev.PeriodStart) {
		return
	}
	before := s.contributionLocked()
	defer func() { s.totals.move(before, s.contributionLocked()) }()
	switch {
	case ev.Decision != Allowed:
		s.denied--
	case ev.Overage:
		s.calls--
		s.overage--
		s.overageMicros -= ev.OverageMicros
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
		s.endpoints = seed.seed(s.id, s.period)
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
		Overage: s.overage, OverageMicros: s.overageMicros, Denied: s.denied, LastCallAt: s.lastCallAt}
	return q
}

// Quota is an account's usage in its current period, as the meter sees it.
type Quota struct {
	Account Account
	Plan    Plan
	Period  Period
	Calls   int64
	Overage int64
	// OverageMicros is the overage's cost, each call at its own rate.
	OverageMicros int64
	Denied        int64
	LastCallAt    time.Time
}

// Remaining is the calls left before the limit (0 for unlimited plans).
func (q Quota) Remaining() int64 { return Remaining(q.Plan, q.Calls) }

// OverageCostCents is the period's overage cost so far, in whole cents,
// each call priced at the plan in force when it was made.
func (q Quota) OverageCostCents() int64 {
	return q.Counter().OverageCents(q.Plan)
}

// Counter is the quota's period counter.
func (q Quota) Counter() Counter {
	return Counter{AccountID: q.Account.ID, PeriodStart: q.Period.Start, Calls: q.Calls, Overage: q.Overage,
		OverageMicros: q.OverageMicros, Denied: q.Denied, LastCallAt: q.LastCallAt}
}

// UsagePercentage is calls as a percentage of the limit.
func (q Quota) UsagePercentage() float64 { return UsagePercentage(q.Plan, q.Calls) }
