package meter

import (
	"math"
	"math/bits"
)

// microsPerCent converts micro-dollars to cents: 1 cent = 10,000 micros.
const microsPerCent = 10000

// OverageCalls returns how many of a period's calls are billable overage:
// the calls past the limit of a soft plan. Hard plans deny instead, and
// unlimited plans have nothing to exceed.
func OverageCalls(plan Plan, calls int64) int64 {
	if plan.Hard || plan.Unlimited() || calls <= plan.Limit {
		return 0
	}
	return calls - plan.Limit
}

// OverageCostCents returns the price of overageCalls calls at micros
// micro-dollars each, in whole cents rounded down so a customer is never
// overcharged. Bill the cost of the period's cumulative overage minus what
// was already billed, and a fraction of a cent carries until it is whole.
//
// Negative inputs cost 0. The product is computed in 128 bits, so it cannot
// overflow; a cost beyond math.MaxInt64 cents saturates.
func OverageCostCents(overageCalls, micros int64) int64 {
	if overageCalls <= 0 || micros <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(overageCalls), uint64(micros))
	if hi >= microsPerCent {
		// The quotient would not fit in 64 bits (bits.Div64 panics then).
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, microsPerCent)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// Remaining returns the calls left in the period, never negative. It is 0
// for unlimited plans, which have no count to show; check Unlimited first.
func Remaining(plan Plan, calls int64) int64 {
	if plan.Unlimited() {
		return 0
	}
	return max(plan.Limit-max(calls, 0), 0)
}

// UsagePercentage returns calls as a percentage of the limit, rounded to
// two decimals. It can exceed 100 on soft plans; it is 0 for unlimited ones.
func UsagePercentage(plan Plan, calls int64) float64 {
	if plan.Unlimited() || calls <= 0 {
		return 0
	}
	pct := float64(calls) / float64(plan.Limit) * 100
	return math.Round(pct*100) / 100
}

// MicrosToCents converts a cost in micro-dollars to whole cents, rounded
// down: floor(micros / 10,000). The fraction carries in the running total
// until it is whole, so a customer is never overcharged.
func MicrosToCents(micros int64) int64 {
	if micros <= 0 {
		return 0
	}
	return micros / microsPerCent
}

// mulSat returns a × b for non-negative a and b, saturating at MaxInt64.
func mulSat(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo)
}
