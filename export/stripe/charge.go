package stripe

import (
	"context"
	"errors"

	"github.com/meterd/meterd/meter"
)

// charge writes the period's due amount as a new intent, then sends it.
func (r *run) charge(ctx context.Context, q meter.Quota, c meter.Counter, p meter.Period,
	st meter.BillingState, due int64, line *meter.BillingLine) error {
	if r.stripeDown(line) {
		return nil
	}
	if err := r.renew(ctx); err != nil {
		return err
	}
	in := meter.BillingIntent{AccountID: q.Account.ID, CustomerID: q.Account.StripeCustomerID,
		PeriodStart: p.Start, PeriodEnd: p.End, AmountCents: due, Currency: r.s.cfg.Currency,
		Calls: c.Overage - st.BilledCalls, CallsCovered: c.Overage, CreatedAt: r.s.now()}
	it, err := r.s.cfg.Store.CreateBillingIntent(ctx, r.owner, in, st.BilledCents)
	switch {
	case errors.Is(err, meter.ErrBillingConflict), errors.Is(err, meter.ErrPeriodFinal):
		line.Status, line.Reason = statusSkipped, "billing state changed during the run; the next run bills it"
		return nil
	case err != nil:
		return err
	}
	return r.send(ctx, it, line)
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
// An intent first sent longer ago than Stripe keeps keys is looked up by
// its metadata first, so a lost answer cannot become a second item.
func (r *run) send(ctx context.Context, it meter.BillingIntent, line *meter.BillingLine) error {
	line.Intent = &it
	if line.Status = statusPending; r.stripeDown(line) {
		return nil
	}
	if err := r.renew(ctx); err != nil {
		return err
	}
	if it.Status == meter.IntentSent && r.s.now().Sub(it.SentAt) >= r.s.cfg.KeyRetention {
		id, found, err := r.s.client.find(ctx, it)
		switch {
		case err != nil:
			return r.unknown(ctx, it, line, err)
		case found:
			return r.done(ctx, it, id, line)
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
