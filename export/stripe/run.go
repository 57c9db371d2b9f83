package stripe

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/meterd/meterd/meter"
)

// Line statuses in a report.
const (
	statusCharged     = "charged"
	statusWouldCharge = "would_charge"
	statusNothingDue  = "nothing_due"
	statusPending     = "pending"
	statusFailed      = "failed"
	statusSkipped     = "skipped"
	// statusReconciled: Stripe already held the charge (found by listing
	// the customer's items), so the ledger recorded it instead of sending.
	statusReconciled = "reconciled"
)

// run is one pass over the accounts. A real run holds the lease as owner;
// a dry one writes nothing and calls no one.
type run struct {
	s     *Service
	rep   *Report
	owner string
	dry   bool
	// leaseUntil is when the lease taken by renew runs out.
	leaseUntil time.Time
	// failures counts charges in a row that ended without an answer.
	failures int
	// crashed is set when the fault hook stopped the run.
	crashed bool
	// openCents holds, in a dry run, the open intents' amounts by period.
	openCents map[string]int64
}

// renew takes or extends the lease when less than half of it is left.
func (r *run) renew(ctx context.Context) error {
	if r.dry {
		return nil
	}
	now := r.s.now()
	if now.Add(r.s.cfg.LeaseTTL / 2).Before(r.leaseUntil) {
		return nil
	}
	lease, err := r.s.cfg.Store.AcquireBillingLease(ctx, r.owner, now, r.s.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	r.leaseUntil = lease.Expires
	return nil
}

// all retries the open intents, then bills each account.
func (r *run) all(ctx context.Context, sc scope) error {
	if err := r.retryOpen(ctx); err != nil || sc.retryOnly {
		return err
	}
	for _, q := range r.s.cfg.Accounts.Quotas() {
		if err := r.account(ctx, q, sc); err != nil {
			return err
		}
	}
	return nil
}

// retryOpen resolves every pending or sent intent before anything new is
// charged, with its own key and amount. A dry run lists them.
func (r *run) retryOpen(ctx context.Context) error {
	open, err := r.s.cfg.Store.OpenBillingIntents(ctx)
	if err != nil {
		return err
	}
	r.openCents = map[string]int64{}
	for _, it := range open {
		line := meter.BillingLine{AccountID: it.AccountID, CustomerID: it.CustomerID,
			PeriodStart: it.PeriodStart, PeriodEnd: it.PeriodEnd, Closed: !r.s.now().Before(it.PeriodEnd)}
		if r.dry {
			r.openCents[periodID(it.AccountID, it.PeriodStart)] += it.AmountCents
			line.Status, line.ChargeCents, line.Intent = statusPending, it.AmountCents, &it
			line.Reason = "intent awaiting Stripe's answer; retried by the next run"
		} else if err := r.send(ctx, it, &line); err != nil {
			return err
		}
		r.rep.Lines = append(r.rep.Lines, line)
	}
	return nil
}

func periodID(account string, start time.Time) string {
	return account + "\x00" + start.UTC().Format(time.RFC3339)
}

// account bills each of an account's periods, whatever its plan is now:
// overage belongs to the call, so a period run up on Pro is billed in full
// after a move to free or enterprise. An account without a Stripe
// customer is listed with what it would owe, never charged.
func (r *run) account(ctx context.Context, q meter.Quota, sc scope) error {
	counters, err := r.s.cfg.Store.Counters(ctx, q.Account.ID)
	if err != nil {
		return fmt.Errorf("billing %s: %w", q.Account.ID, err)
	}
	counters = withCurrent(counters, q)
	for _, c := range counters {
		if err := r.period(ctx, q, c, sc); err != nil {
			return err
		}
	}
	return nil
}

// period bills one account period: billable cents minus billed cents.
func (r *run) period(ctx context.Context, q meter.Quota, c meter.Counter, sc scope) error {
	now := r.s.now()
	p := meter.PeriodAt(q.Account.Anchor(), c.PeriodStart)
	if !sc.includes(p) {
		return nil
	}
	st, err := r.s.cfg.Store.BillingState(ctx, q.Account.ID, p.Start)
	if err != nil {
		return fmt.Errorf("billing %s: %w", q.Account.ID, err)
	}
	// A real run retried open intents already; one still open is listed.
	if st.OpenSeq != 0 && !r.dry {
		return nil
	}
	line := newLine(q, c, p, st, now)
	due := meter.DueCents(line.BillableCents, st, r.openCents[periodID(q.Account.ID, p.Start)])
	if !listed(q, line, st, due) {
		return nil
	}
	if line.Closed && !sc.explicit && now.Sub(p.End) > r.s.cfg.Lookback {
		if due > 0 {
			line.Status = statusSkipped
			line.Reason = fmt.Sprintf("closed more than %d days ago; bill it with an explicit period", int(r.s.cfg.Lookback.Hours()/24))
			r.rep.Lines = append(r.rep.Lines, line)
		}
		return nil
	}
	if st.Final && due > 0 {
		line.Late = true
		line.Reason = "calls committed after the period was finalized; billed as a late charge"
	}
	line.DueCents = due
	switch {
	case q.Account.StripeCustomerID == "":
		line.Status, line.Reason, line.NoCustomer = statusSkipped, "no stripe_customer_id", true
		r.rep.UnbillableCents += due
		r.rep.Lines = append(r.rep.Lines, line)
		return nil
	case due <= 0:
		line.Status = statusNothingDue
	case r.dry:
		line.Status, line.ChargeCents = statusWouldCharge, due
		r.rep.Charges++
		r.rep.ChargedCents += due
	default:
		if err := r.charge(ctx, q, c, p, st, &line); err != nil {
			return err
		}
	}
	if err := r.finalize(ctx, &line); err != nil {
		return err
	}
	r.rep.Lines = append(r.rep.Lines, line)
	return nil
}

// withCurrent adds an empty counter for the current period when the
// account made no call in it yet, so a Pro account is listed from the
// first day of its period.
func withCurrent(counters []meter.Counter, q meter.Quota) []meter.Counter {
	for _, c := range counters {
		if c.PeriodStart.Equal(q.Period.Start) {
			return counters
		}
	}
	return append(counters, meter.Counter{AccountID: q.Account.ID, PeriodStart: q.Period.Start})
}

// listed reports whether a period belongs in the report: anything due,
// billed or billable, and every period of a plan that prices overage. A
// finalized period with nothing late is history.
func listed(q meter.Quota, line meter.BillingLine, st meter.BillingState, due int64) bool {
	if st.Final {
		return due > 0
	}
	return due > 0 || line.BillableCents > 0 || st.BilledCents > 0 || meter.OveragePriceMicros(q.Plan) > 0
}

// finalize marks a period final once its grace is over and everything
// due is billed. Calls committed into it later are billed as late charges.
func (r *run) finalize(ctx context.Context, line *meter.BillingLine) error {
	if r.dry || line.Late || (line.Status != statusNothingDue && line.Status != statusCharged) ||
		meter.PeriodClose(meter.Period{Start: line.PeriodStart, End: line.PeriodEnd}, r.s.now(), r.s.cfg.Grace) != meter.PeriodFinalizable {
		return nil
	}
	st, err := r.s.cfg.Store.BillingState(ctx, line.AccountID, line.PeriodStart)
	if err != nil || st.Final {
		return err
	}
	if err := r.renew(ctx); err != nil {
		return err
	}
	if err := r.notifyClosed(ctx, line); err != nil {
		return err
	}
	if err := r.s.cfg.Store.FinalizeBillingPeriod(ctx, r.owner, line.AccountID, line.PeriodStart, r.s.now()); err != nil {
		return err
	}
	line.Finalized = true
	return nil
}

// newLine computes a period's numbers before anything is charged.
func newLine(q meter.Quota, c meter.Counter, p meter.Period, st meter.BillingState, now time.Time) meter.BillingLine {
	return meter.BillingLine{AccountID: q.Account.ID, CustomerID: q.Account.StripeCustomerID, Plan: q.Plan.Name,
		PeriodStart: p.Start, PeriodEnd: p.End, Closed: !now.Before(p.End), OverageCalls: c.Overage,
		BillableCents: meter.BillableCents(c, q.Plan), BilledCents: st.BilledCents,
		ProjectedCents: projectedCents(q.Plan, c, p, now), Finalized: st.Final}
}

// projectedCents extrapolates an open period's calls at the rate so far to
// its end: the overage run up so far at its own prices, plus the further
// overage the current plan would bill; a closed period's total is what it
// is.
func projectedCents(plan meter.Plan, c meter.Counter, p meter.Period, now time.Time) int64 {
	billable := meter.BillableCents(c, plan)
	if !now.Before(p.End) || !now.After(p.Start) {
		return billable
	}
	calls := scale(c.Calls, p.End.Sub(p.Start), now.Sub(p.Start))
	more := max(meter.OverageCalls(plan, calls)-c.Overage, 0)
	return meter.MicrosToCents(c.PricedOverageMicros(plan) + more*meter.OveragePriceMicros(plan))
}

// scale returns n × num / den in 128-bit arithmetic, saturating.
func scale(n int64, num, den time.Duration) int64 {
	if n <= 0 || num <= 0 || den <= 0 {
		return max(n, 0)
	}
	hi, lo := bits.Mul64(uint64(n), uint64(num))
	if hi >= uint64(den) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(den))
	return int64(min(q, math.MaxInt64))
}
