package stripe

import (
	"context"
	"errors"

	"github.com/meterd/meterd/meter"
)

// charge writes the period's due amount as a new intent, then sends it.
// A period last checked against Stripe before the ledger was restored is
// reconciled first, so only what Stripe does not hold is charged.
func (r *run) charge(ctx context.Context, q meter.Quota, c meter.Counter, p meter.Period,
	st meter.BillingState, line *meter.BillingLine) error {
	for attempt := 0; ; attempt++ {
		if r.stripeDown(line) {
			return nil
		}
		if err := r.renew(ctx); err != nil {
			return err
		}
		if meter.NeedsStripeCheck(st, r.s.cfg.Store.Epoch()) {
			var err error
			if st, err = r.reconcile(ctx, q.Account.StripeCustomerID, q.Account.ID, p); err != nil {
				return r.lookupFailed(line, err)
			}
		}
		due := meter.DueCents(line.BillableCents, st, 0)
		line.BilledCents, line.DueCents = st.BilledCents, due
		if due <= 0 {
			line.Status = statusNothingDue
			return nil
		}
		in := meter.ChargeFor(q.Account, p, c, st, due, r.s.cfg.Currency, r.s.now())
		it, err := r.s.cfg.Store.CreateBillingIntent(ctx, r.owner, in, st.BilledCents)
		switch {
		case errors.Is(err, meter.ErrBillingConflict), errors.Is(err, meter.ErrPeriodFinal):
			line.Status, line.Reason = statusSkipped, "billing state changed during the run; the next run bills it"
			return nil
		case err != nil:
			return err
		}
		if err := r.send(ctx, it, line); err != nil || line.Status != statusReconciled || attempt > 0 {
			return err
		}
		// Stripe held the key for another charge: what it holds is now
		// recorded, so charge the rest once, with a fresh key.
		if st, err = r.s.cfg.Store.BillingState(ctx, q.Account.ID, p.Start); err != nil {
			return err
		}
	}
}

// reconcile lists what Stripe holds for an account period, records the
// items the ledger lacks as done intents, and marks the period checked in
// the current restore epoch. It returns the period's new state.
func (r *run) reconcile(ctx context.Context, customer, account string, p meter.Period) (meter.BillingState, error) {
	items, err := r.s.client.listPeriod(ctx, customer, account, p.Start)
	if err != nil {
		return meter.BillingState{}, err
	}
	intents, err := r.s.cfg.Store.PeriodIntents(ctx, account, p.Start)
	if err != nil {
		return meter.BillingState{}, err
	}
	rec := meter.Reconcile(intents, items, r.s.now())
	for i := range rec.Adopt {
		a := &rec.Adopt[i]
		a.CustomerID, a.Currency = customer, r.s.cfg.Currency
		if a.PeriodEnd.IsZero() {
			a.PeriodEnd = p.End
		}
	}
	st, err := r.s.cfg.Store.AdoptStripeCharges(ctx, r.owner, account, p.Start, rec.Adopt, r.s.cfg.Store.Epoch())
	if err != nil {
		return meter.BillingState{}, err
	}
	if len(rec.Adopt) > 0 {
		r.s.metrics.adopted.Add(float64(len(rec.Adopt)))
		r.s.cfg.Logger.Warn("Stripe holds overage charges the ledger did not record; recorded them as billed",
			"account", account, "period_start", p.Start, "items", len(rec.Adopt), "stripe_cents", rec.StripeCents,
			"ledger_cents", rec.LedgerCents)
	}
	return st, nil
}

// lookupFailed reports a period that could not be checked against Stripe:
// nothing is charged for it until a run can.
func (r *run) lookupFailed(line *meter.BillingLine, err error) error {
	r.failures++
	r.rep.Errors++
	line.Status, line.Error = statusPending, "listing Stripe's invoice items failed: "+errorText(err)
	line.Reason = "reconciliation with Stripe is needed before the next charge; the next run retries"
	return nil
}

// stripeDown stops sending after several charges in a row got no answer:
// the rest are left for the next run instead of each waiting out a timeout.
func (r *run) stripeDown(line *meter.BillingLine) bool {
	if r.failures < consecutiveFailuresLimit {
		return false
	}
	if line.Status == "" {
		line.Status = statusSkipped
	}
	line.Reason = "Stripe did not answer the previous charges; the next run retries"
	r.rep.Errors++
	return true
}

// send gets an intent to Stripe with its own key and records the outcome.
// For an intent first sent longer ago than Stripe keeps keys, the period is
// reconciled with the customer's items first, so a lost answer cannot
// become a second item.
func (r *run) send(ctx context.Context, it meter.BillingIntent, line *meter.BillingLine) error {
	line.Intent = &it
	if line.Status = statusPending; r.stripeDown(line) {
		return nil
	}
	if err := r.renew(ctx); err != nil {
		return err
	}
	if resolved, err := r.checkRestored(ctx, &it, line); resolved || err != nil {
		return err
	}
	if it.Status == meter.IntentSent && r.s.now().Sub(it.SentAt) >= r.s.cfg.KeyRetention {
		// Stripe may have forgotten the key: count what it holds for the
		// period first (this intent's item included, if the lost attempt
		// made it), and send only if it holds no item under this seq.
		if _, err := r.reconcile(ctx, it.CustomerID, it.AccountID, meter.Period{Start: it.PeriodStart, End: it.PeriodEnd}); err != nil {
			return r.unknown(ctx, it, line, err)
		}
		if resolved, err := r.reread(ctx, &it, line); resolved || err != nil {
			return err
		}
	}
	it, err := r.s.cfg.Store.UpdateBillingIntent(ctx, r.update(it, meter.IntentSent))
	if err != nil {
		return err
	}
	if !it.Status.Open() { // resolved meanwhile by a run that lost the lease
		line.Status, line.Reason, line.Intent = statusNothingDue, "intent already "+string(it.Status), &it
		return nil
	}
	id, err := r.s.client.create(ctx, it)
	if err != nil {
		if idempotencyError(err) {
			return r.conflicted(ctx, it, line, err)
		}
		if refused(err) {
			return r.refuse(ctx, it, line, err)
		}
		return r.unknown(ctx, it, line, err)
	}
	if fn := r.s.afterStripeAcceptFn; fn != nil {
		if err := fn(); err != nil {
			r.crashed = true
			return err
		}
	}
	return r.done(ctx, it, id, line)
}

func (r *run) update(it meter.BillingIntent, status meter.IntentStatus) meter.IntentUpdate {
	return meter.IntentUpdate{AccountID: it.AccountID, PeriodStart: it.PeriodStart, Seq: it.Seq,
		Status: status, At: r.s.now()}
}

// done records Stripe's id. The write is not cancelled with ctx: Stripe
// has the item, and the ledger should know it.
func (r *run) done(ctx context.Context, it meter.BillingIntent, stripeID string, line *meter.BillingLine) error {
	u := r.update(it, meter.IntentDone)
	u.StripeID = stripeID
	if err := r.notify(ctx, meter.NoticeChargeCreated, it, map[string]string{"stripe_id": stripeID}); err != nil {
		return err
	}
	it, err := r.s.cfg.Store.UpdateBillingIntent(context.WithoutCancel(ctx), u)
	if err != nil {
		return err
	}
	r.failures = 0
	r.s.metrics.charges.WithLabelValues(resultSent).Inc()
	r.s.metrics.billedCents.Add(float64(it.AmountCents))
	if it.Late {
		r.s.metrics.lateCalls.Add(float64(it.Calls))
	}
	r.rep.Charges++
	r.rep.ChargedCents += it.AmountCents
	line.Status, line.ChargeCents, line.Intent, line.Error = statusCharged, it.AmountCents, &it, ""
	r.s.cfg.Logger.Info("overage charged", "account", it.AccountID, "period_start", it.PeriodStart,
		"seq", it.Seq, "amount_cents", it.AmountCents, "stripe_id", it.StripeID)
	return nil
}

// refuse records a definite refusal: nothing was charged, so the amount
// stays unbilled and a later intent bills it.
func (r *run) refuse(ctx context.Context, it meter.BillingIntent, line *meter.BillingLine, cause error) error {
	u := r.update(it, meter.IntentFailed)
	u.Error = errorText(cause)
	if err := r.notify(ctx, meter.NoticeChargeFailed, it, map[string]string{"reason": u.Error}); err != nil {
		return err
	}
	it, err := r.s.cfg.Store.UpdateBillingIntent(context.WithoutCancel(ctx), u)
	if err != nil {
		return err
	}
	r.failures = 0
	r.s.metrics.charges.WithLabelValues(resultFail).Inc()
	r.rep.Errors++
	line.Status, line.Intent, line.Error = statusFailed, &it, u.Error
	r.s.cfg.Logger.Warn("Stripe refused an overage charge", "account", it.AccountID,
		"period_start", it.PeriodStart, "seq", it.Seq, "amount_cents", it.AmountCents, "error", u.Error)
	return nil
}

// unknown records an attempt without a definite answer (timeout, network,
// 5xx, idempotency error): the intent stays open and is retried with the
// same key and amount.
func (r *run) unknown(ctx context.Context, it meter.BillingIntent, line *meter.BillingLine, cause error) error {
	u := r.update(it, meter.IntentSent)
	u.Error = errorText(cause)
	if _, err := r.s.cfg.Store.UpdateBillingIntent(context.WithoutCancel(ctx), u); err != nil {
		return err
	}
	r.failures++
	r.s.metrics.charges.WithLabelValues(resultError).Inc()
	r.rep.Errors++
	line.Status, line.Error = statusPending, u.Error
	r.s.cfg.Logger.Warn("overage charge outcome unknown; it is retried with the same key", "account", it.AccountID,
		"period_start", it.PeriodStart, "seq", it.Seq, "amount_cents", it.AmountCents, "error", u.Error)
	return nil
}

// checkRestored reconciles an open intent's period with Stripe when the
// ledger was restored since the period was last checked: the intent may
// be one Stripe already holds. resolved reports that it no longer needs
// sending.
func (r *run) checkRestored(ctx context.Context, it *meter.BillingIntent, line *meter.BillingLine) (bool, error) {
	st, err := r.s.cfg.Store.BillingState(ctx, it.AccountID, it.PeriodStart)
	if err != nil || !meter.NeedsStripeCheck(st, r.s.cfg.Store.Epoch()) {
		return false, err
	}
	if _, err := r.reconcile(ctx, it.CustomerID, it.AccountID, meter.Period{Start: it.PeriodStart, End: it.PeriodEnd}); err != nil {
		return true, r.lookupFailed(line, err)
	}
	return r.reread(ctx, it, line)
}

// reread loads the intent again after a reconciliation: if Stripe held it,
// it is done now.
func (r *run) reread(ctx context.Context, it *meter.BillingIntent, line *meter.BillingLine) (bool, error) {
	intents, err := r.s.cfg.Store.PeriodIntents(ctx, it.AccountID, it.PeriodStart)
	if err != nil {
		return false, err
	}
	for _, cur := range intents {
		if cur.Seq == it.Seq {
			*it = cur
		}
	}
	if it.Status.Open() {
		return false, nil
	}
	line.Status, line.Intent = statusReconciled, it
	line.Reason = "Stripe already holds this charge; recorded as billed"
	return true, nil
}

// conflicted handles Stripe's idempotency_error, a definite answer: the
// key was used by another request (a restored or copied ledger reused
// it), and this request created nothing. The period is reconciled with
// what Stripe holds; if Stripe holds no item under this key, the intent
// is closed as failed and a later intent, with a fresh key, bills its
// amount. The run goes on; nothing is left stuck.
func (r *run) conflicted(ctx context.Context, it meter.BillingIntent, line *meter.BillingLine, cause error) error {
	if _, err := r.reconcile(ctx, it.CustomerID, it.AccountID, meter.Period{Start: it.PeriodStart, End: it.PeriodEnd}); err != nil {
		return r.lookupFailed(line, err)
	}
	if resolved, err := r.reread(ctx, &it, line); resolved || err != nil {
		return err
	}
	u := r.update(it, meter.IntentFailed)
	u.Error = errorText(cause) + " (key held by another request; reconciled with Stripe)"
	it, err := r.s.cfg.Store.UpdateBillingIntent(context.WithoutCancel(ctx), u)
	if err != nil {
		return err
	}
	line.Status, line.Intent = statusReconciled, &it
	line.Reason = "idempotency key already used for another charge; reconciled with Stripe, the rest is billed with a fresh key"
	return nil
}
