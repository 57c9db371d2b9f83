package meter

import "time"

// DefaultBillingGrace is how long after a period ends it stays open to
// late commits before it is finalized (see PeriodClose).
const DefaultBillingGrace = time.Hour

// PeriodCloseState is where a period stands for billing at some instant.
type PeriodCloseState int

const (
	// PeriodOpen: calls are still being made in it; charges are partial.
	PeriodOpen PeriodCloseState = iota
	// PeriodClosing: ended, inside the grace: the closing charge is made,
	// and late commits (an async commit in flight, a proxied call whose
	// upstream answered after the end) are still billed into it.
	PeriodClosing
	// PeriodFinalizable: ended more than the grace ago; once nothing is
	// due or open it is finalized.
	PeriodFinalizable
)

// PeriodClose says where p stands at now with the given grace.
func PeriodClose(p Period, now time.Time, grace time.Duration) PeriodCloseState {
	switch {
	case now.Before(p.End):
		return PeriodOpen
	case now.Before(p.End.Add(max(grace, 0))):
		return PeriodClosing
	}
	return PeriodFinalizable
}

// BillableCents is what a period's overage costs in total, each call at
// its own rate (fallback prices counters older than per-call prices).
func BillableCents(c Counter, fallback Plan) int64 { return c.OverageCents(fallback) }

// DueCents is what a new charge for the period should bill: the billable
// total minus what is billed (done intents) and what open intents may
// still bill. It is never negative.
func DueCents(billable int64, st BillingState, openCents int64) int64 {
	return max(billable-st.BilledCents-max(openCents, 0), 0)
}

// LateCalls is how many overage calls reached a finalized period after it
// was finalized, and are billed by a late charge.
func LateCalls(c Counter, st BillingState) int64 {
	if !st.Final {
		return 0
	}
	return max(c.Overage-st.BilledCalls, 0)
}

// ChargeFor builds the intent that bills due cents of a period: the store
// stamps Seq, key and status when it writes it (NewIntent). A charge into
// a finalized period is a late one and says so.
func ChargeFor(a Account, p Period, c Counter, st BillingState, due int64, currency string, now time.Time) BillingIntent {
	return BillingIntent{AccountID: a.ID, CustomerID: a.StripeCustomerID, PeriodStart: p.Start.UTC(),
		PeriodEnd: p.End.UTC(), AmountCents: due, Currency: currency, Calls: max(c.Overage-st.BilledCalls, 0),
		CallsCovered: c.Overage, Late: st.Final, CreatedAt: now.UTC()}
}

// CheckNewIntent is the rule for writing a new intent into a period whose
// state is st: no intent may be open, and the billed total must be the one
// the charge was computed from. A finalized period takes only late
// charges.
func CheckNewIntent(st BillingState, in BillingIntent, billedCents int64) error {
	switch {
	case st.Final && !in.Late:
		return ErrPeriodFinal
	case st.OpenSeq != 0 || st.BilledCents != billedCents:
		return ErrBillingConflict
	}
	return nil
}

// NewIntent stamps a fresh intent with its Seq, key and initial status.
func NewIntent(in BillingIntent, seq uint32) BillingIntent {
	in.PeriodStart, in.PeriodEnd = in.PeriodStart.UTC(), in.PeriodEnd.UTC()
	in.Seq = seq
	in.IdempotencyKey = IntentKey(in.AccountID, in.PeriodStart, seq)
	in.Status, in.StripeID, in.Attempts, in.LastError = IntentPending, "", 0, ""
	in.CreatedAt = in.CreatedAt.UTC()
	in.UpdatedAt, in.SentAt = in.CreatedAt, time.Time{}
	return in
}

// ApplyIntentUpdate moves an open intent and its period state on by one
// attempt's outcome. Done and failed are final: it reports false (and
// changes nothing) for an intent that is not open.
func ApplyIntentUpdate(it *BillingIntent, st *BillingState, u IntentUpdate) bool {
	if !it.Status.Open() {
		return false
	}
	at := u.At.UTC()
	it.UpdatedAt = at
	if u.Error != "" {
		it.LastError = u.Error
	}
	switch u.Status {
	case IntentSent:
		if u.Error == "" {
			it.Attempts++
		}
		if it.SentAt.IsZero() {
			it.SentAt = at
		}
		it.Status = IntentSent
		return true
	case IntentDone:
		it.Status, it.StripeID = IntentDone, u.StripeID
		st.BilledCents += it.AmountCents
		st.BilledCalls = max(st.BilledCalls, it.CallsCovered)
		if it.Late {
			st.LateCalls += it.Calls
		}
	case IntentFailed:
		it.Status = IntentFailed
	}
	if st.OpenSeq == it.Seq {
		st.OpenSeq = 0
	}
	return true
}

// CheckFinalize is the rule for finalizing a period: nothing open.
func CheckFinalize(st BillingState) error {
	if st.OpenSeq != 0 {
		return ErrBillingConflict
	}
	return nil
}

// StripeCharge is one invoice item Stripe holds for an account period,
// recognised by the metadata meterd puts on every item.
type StripeCharge struct {
	StripeID    string
	AccountID   string
	PeriodStart time.Time
	Seq         uint32
	AmountCents int64
	// CallsCovered is the period's cumulative overage calls the item
	// brought the billed total to.
	CallsCovered int64
}

// Reconciliation is what the ledger must learn from Stripe about one
// period: the items Stripe holds that the ledger does not count as done.
type Reconciliation struct {
	// Adopt are Stripe's items whose Seq the ledger has no done intent
	// for: they are recorded as done, so their amount is never billed
	// again, and the next Seq is past all of them.
	Adopt []BillingIntent
	// StripeCents sums every item Stripe holds for the period;
	// LedgerCents the ledger's done intents.
	StripeCents, LedgerCents int64
}

// Reconcile compares the ledger's intents of one period with Stripe's
// items for it. An item whose Seq matches a done intent is the same
// charge; any other is adopted. Open intents whose Seq Stripe holds are
// adopted too (the item exists; the intent's answer was lost).
func Reconcile(intents []BillingIntent, items []StripeCharge, now time.Time) Reconciliation {
	var r Reconciliation
	done := map[uint32]bool{}
	byseq := map[uint32]BillingIntent{}
	for _, it := range intents {
		byseq[it.Seq] = it
		if it.Status == IntentDone {
			done[it.Seq] = true
			r.LedgerCents += it.AmountCents
		}
	}
	for _, c := range items {
		r.StripeCents += c.AmountCents
		if done[c.Seq] {
			continue
		}
		in := byseq[c.Seq]
		in.AccountID, in.PeriodStart, in.Seq = c.AccountID, c.PeriodStart.UTC(), c.Seq
		in.AmountCents, in.CallsCovered, in.StripeID = c.AmountCents, c.CallsCovered, c.StripeID
		in.Status, in.Adopted, in.UpdatedAt = IntentDone, true, now.UTC()
		if in.CreatedAt.IsZero() {
			in.CreatedAt = now.UTC()
		}
		in.IdempotencyKey = IntentKey(c.AccountID, c.PeriodStart, c.Seq)
		r.Adopt = append(r.Adopt, in)
	}
	return r
}

// ApplyAdoption records adopted items in a period's state: billed totals
// grow by each item, LastSeq moves past them, and an open intent that
// Stripe turned out to hold is closed.
func ApplyAdoption(st *BillingState, adopted BillingIntent, wasOpen bool) {
	st.BilledCents += adopted.AmountCents
	st.BilledCalls = max(st.BilledCalls, adopted.CallsCovered)
	st.LastSeq = max(st.LastSeq, adopted.Seq)
	if wasOpen && st.OpenSeq == adopted.Seq {
		st.OpenSeq = 0
	}
}

// NeedsStripeCheck is the rule for when a period must be reconciled with
// Stripe before its next charge: the ledger was restored since the period
// was last checked (its billed totals may be behind what Stripe holds).
func NeedsStripeCheck(st BillingState, epoch uint64) bool { return st.Epoch < epoch }

// IsDowngrade reports whether moving from one plan to another takes
// something away from the customer: fewer included calls, a limit where
// there was none, or a hard limit where calls were allowed. Upgrades (and
// moves that take nothing away) apply at once; downgrades at period end.
func IsDowngrade(from, to Plan) bool {
	switch {
	case from.Unlimited():
		return !to.Unlimited()
	case to.Unlimited():
		return false
	case to.Limit != from.Limit:
		return to.Limit < from.Limit
	}
	return to.Hard && !from.Hard
}

// PlanChange is when a requested plan change takes effect.
type PlanChange struct {
	// Now applies the plan at once; otherwise it becomes pending until At
	// (the end of the current period).
	Now bool
	At  time.Time
}

// SchedulePlanChange decides when a change from one plan to another
// takes effect: upgrades at once, downgrades at the end of the current
// period unless effectiveNow.
func SchedulePlanChange(from, to Plan, current Period, effectiveNow bool) PlanChange {
	if effectiveNow || !IsDowngrade(from, to) {
		return PlanChange{Now: true}
	}
	return PlanChange{At: current.End}
}
