package meter

import "math"

// The counting rule, the overage rule and the price of a call. Every
// place that counts (the meter's live state, the overview's running
// totals, the ledger's aggregates and verify, the billing run) calls these
// functions, so the rules have exactly one home.

// OveragePriceMicros is the price of one overage call on plan, in
// micro-dollars: the plan's rate on a soft plan with a limit, else 0
// (hard plans deny instead, unlimited plans have nothing to exceed).
func OveragePriceMicros(plan Plan) int64 {
	if plan.Hard || plan.Unlimited() {
		return 0
	}
	return max(plan.OverageMicros, 0)
}

// IsOverageCall is the overage rule: the call that brings a period's
// allowed calls to callsAfter (this call included) is overage when the
// plan is soft, limited, and callsAfter is past the limit.
func IsOverageCall(plan Plan, callsAfter int64) bool {
	return !plan.Hard && !plan.Unlimited() && callsAfter > plan.Limit
}

// StampOverage marks ev as an overage call priced at plan (the plan in
// force when the call was made), or clears the mark.
func StampOverage(ev *Event, plan Plan, overage bool) {
	ev.Overage, ev.OverageMicros = overage, 0
	if overage {
		ev.OverageMicros = OveragePriceMicros(plan)
	}
}

// Count is the counting rule: what one recorded call adds to its period
// counter. A denied call is counted as denied and is not usage; an allowed
// one is a call, and an overage call also adds its own price, so overage
// run up on one plan keeps its rate whatever the plan becomes.
func (c *Counter) Count(ev *Event) {
	if countCall(ev, &c.Calls, &c.Overage, &c.Denied) && ev.Overage {
		if ev.OverageMicros < 0 {
			c.UnpricedOverage++
		} else {
			c.OverageMicros += ev.OverageMicros
		}
	}
	if ev.Time.After(c.LastCallAt) {
		c.LastCallAt = ev.Time
	}
}

// countCall is the part of the counting rule that period counters and
// daily usage share: a denied call counts as denied only; an allowed one
// as a call, and as overage when marked so. It reports whether the call
// was allowed. A coalesced denial counts as the denials it stands for.
func countCall(ev *Event, calls, overage, denied *int64) bool {
	if ev.Decision == Denied {
		*denied += ev.Calls()
		return false
	}
	*calls++
	if ev.Overage {
		*overage++
	}
	return true
}

// Add merges o (a delta of the same account and period) into c.
func (c *Counter) Add(o Counter) {
	c.Calls += o.Calls
	c.Overage += o.Overage
	c.OverageMicros += o.OverageMicros
	c.UnpricedOverage += o.UnpricedOverage
	c.Denied += o.Denied
	if o.LastCallAt.After(c.LastCallAt) {
		c.LastCallAt = o.LastCallAt
	}
}

// PricedOverageMicros is the period's overage cost in micro-dollars, each
// call at its own rate; calls recorded before calls carried their price
// (UnpricedOverage) are priced at fallback's rate.
func (c Counter) PricedOverageMicros(fallback Plan) int64 {
	legacy := mulSat(c.UnpricedOverage, OveragePriceMicros(fallback))
	if legacy > math.MaxInt64-c.OverageMicros {
		return math.MaxInt64
	}
	return c.OverageMicros + legacy
}

// OverageCents is the period's overage cost in whole cents, rounded down
// (see MicrosToCents).
func (c Counter) OverageCents(fallback Plan) int64 {
	return MicrosToCents(c.PricedOverageMicros(fallback))
}
