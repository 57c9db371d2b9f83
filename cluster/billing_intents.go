package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/meter"
)

// underLease runs fn in a transaction that holds the lease row locked, if
// owner holds the lease; otherwise it returns meter.ErrBillingBusy. fn's
// refusal (a rule of meter's) rolls nothing back: it is returned after
// the commit of whatever fn wrote before deciding, which is nothing.
func (b *Billing) underLease(ctx context.Context, owner string, fn func(tx pgx.Tx) (refusal error, err error)) error {
	var refusal error
	err := pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		refusal = nil
		ok, err := holdsLease(ctx, tx, owner)
		if err != nil {
			return err
		}
		if !ok {
			refusal = meter.ErrBillingBusy
			return nil
		}
		refusal, err = fn(tx)
		return err
	})
	if err != nil {
		return err
	}
	return refusal
}

// CreateBillingIntent implements meter.BillingStore.
func (b *Billing) CreateBillingIntent(ctx context.Context, owner string, in meter.BillingIntent, billedCents int64) (meter.BillingIntent, error) {
	if in.AccountID == "" || in.AmountCents <= 0 || in.PeriodStart.IsZero() || in.CreatedAt.IsZero() {
		return meter.BillingIntent{}, meter.Invalid("intent", "needs an account, a period, a creation time and a positive amount")
	}
	var out meter.BillingIntent
	err := b.underLease(ctx, owner, func(tx pgx.Tx) (error, error) {
		st, err := getState(ctx, tx, in.AccountID, in.PeriodStart)
		if err != nil {
			return nil, err
		}
		if refusal := meter.CheckNewIntent(st, in, billedCents); refusal != nil {
			return refusal, nil
		}
		st.LastSeq++
		st.OpenSeq = st.LastSeq
		out = meter.NewIntent(in, st.LastSeq)
		return nil, putIntent(ctx, tx, st, out)
	})
	if err != nil {
		return meter.BillingIntent{}, fmt.Errorf("create billing intent for %s: %w", in.AccountID, err)
	}
	return out, nil
}

// UpdateBillingIntent implements meter.BillingStore. Like the ledger's, it
// needs no lease: an outcome Stripe gave is true whoever records it.
func (b *Billing) UpdateBillingIntent(ctx context.Context, u meter.IntentUpdate) (meter.BillingIntent, error) {
	switch {
	case u.Status != meter.IntentSent && u.Status != meter.IntentDone && u.Status != meter.IntentFailed:
		return meter.BillingIntent{}, meter.Invalid("status", "must be sent, done or failed, not %q", u.Status)
	case u.Status == meter.IntentDone && u.StripeID == "":
		return meter.BillingIntent{}, meter.Invalid("stripe_id", "is required for a done intent")
	}
	var out meter.BillingIntent
	var found bool
	err := pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		// The state row is locked first, as every other writer does.
		st, err := getState(ctx, tx, u.AccountID, u.PeriodStart)
		if err != nil {
			return err
		}
		it, ok, err := getIntent(ctx, tx, u.AccountID, u.PeriodStart, u.Seq)
		found, out = ok, it
		if err != nil || !ok || !it.Status.Open() {
			return err
		}
		meter.ApplyIntentUpdate(&it, &st, u)
		out = it
		return putIntent(ctx, tx, st, it)
	})
	if err == nil && !found {
		err = meter.ErrIntentNotFound
	}
	if err != nil {
		return meter.BillingIntent{}, fmt.Errorf("update billing intent %s: %w", meter.IntentKey(u.AccountID, u.PeriodStart, u.Seq), err)
	}
	return out, nil
}

// intentOrder is the ledger's key order: period, account, Seq.
const intentOrder = ` ORDER BY period_start, account_id, seq`

func (b *Billing) queryIntents(ctx context.Context, sql string, args ...any) ([]meter.BillingIntent, error) {
	rows, err := b.db.Query(ctx, sql+intentOrder, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (meter.BillingIntent, error) {
		var body string
		var it meter.BillingIntent
		if err := r.Scan(&body); err != nil {
			return it, err
		}
		return it, json.Unmarshal([]byte(body), &it)
	})
}

// OpenBillingIntents implements meter.BillingStore.
func (b *Billing) OpenBillingIntents(ctx context.Context) ([]meter.BillingIntent, error) {
	out, err := b.queryIntents(ctx, `SELECT body FROM meterd_billing_intents WHERE open`)
	if err != nil {
		return nil, fmt.Errorf("open billing intents: %w", err)
	}
	return out, nil
}

// BillingIntents implements meter.BillingStore.
func (b *Billing) BillingIntents(ctx context.Context, from, to time.Time) ([]meter.BillingIntent, error) {
	out, err := b.queryIntents(ctx, `SELECT body FROM meterd_billing_intents WHERE period_start >= $1 AND period_start < $2`, from, to)
	if err != nil {
		return nil, fmt.Errorf("billing intents: %w", err)
	}
	return out, nil
}

// PeriodIntents implements meter.BillingStore.
func (b *Billing) PeriodIntents(ctx context.Context, account string, periodStart time.Time) ([]meter.BillingIntent, error) {
	out, err := b.queryIntents(ctx, `SELECT body FROM meterd_billing_intents WHERE account_id = $1 AND period_start = $2`, account, periodStart)
	if err != nil {
		return nil, fmt.Errorf("period intents: %w", err)
	}
	return out, nil
}

// FinalizeBillingPeriod implements meter.BillingStore.
func (b *Billing) FinalizeBillingPeriod(ctx context.Context, owner, account string, periodStart, at time.Time) error {
	err := b.underLease(ctx, owner, func(tx pgx.Tx) (error, error) {
		st, err := getState(ctx, tx, account, periodStart)
		if err != nil || st.Final {
			return nil, err
		}
		if refusal := meter.CheckFinalize(st); refusal != nil {
			return refusal, nil
		}
		st.Final, st.FinalizedAt = true, at.UTC()
		return nil, putState(ctx, tx, st)
	})
	if err != nil {
		return fmt.Errorf("finalize billing period of %s: %w", account, err)
	}
	return nil
}

// AdoptStripeCharges implements meter.BillingStore.
func (b *Billing) AdoptStripeCharges(ctx context.Context, owner, account string, periodStart time.Time,
	adopt []meter.BillingIntent, epoch uint64) (meter.BillingState, error) {
	var st meter.BillingState
	err := b.underLease(ctx, owner, func(tx pgx.Tx) (error, error) {
		var err error
		if st, err = getState(ctx, tx, account, periodStart); err != nil {
			return nil, err
		}
		for _, in := range adopt {
			cur, found, err := getIntent(ctx, tx, in.AccountID, in.PeriodStart, in.Seq)
			if err != nil {
				return nil, err
			}
			if found && cur.Status == meter.IntentDone {
				continue
			}
			if found && in.PeriodEnd.IsZero() {
				in.PeriodEnd = cur.PeriodEnd
			}
			meter.ApplyAdoption(&st, in, found && cur.Status.Open())
			if err := putIntent(ctx, tx, st, in); err != nil {
				return nil, err
			}
		}
		st.Epoch = max(st.Epoch, epoch)
		return nil, putState(ctx, tx, st)
	})
	if err != nil {
		return meter.BillingState{}, fmt.Errorf("adopt Stripe charges of %s: %w", account, err)
	}
	return st, nil
}

// Epoch implements meter.BillingStore. The shared billing state is never
// restored by meterd (a node's ledger restore leaves it alone), so it is
// always 0; restoring the database itself would need a reconcile run.
func (b *Billing) Epoch() uint64 { return 0 }

// LastBillingRun implements meter.BillingStore.
func (b *Billing) LastBillingRun(ctx context.Context) (time.Time, error) {
	var at *time.Time
	if err := b.db.QueryRow(ctx, `SELECT last_run FROM meterd_billing_lease WHERE id = 1`).Scan(&at); err != nil {
		return time.Time{}, fmt.Errorf("last billing run: %w", err)
	}
	if at == nil {
		return time.Time{}, nil
	}
	return at.UTC(), nil
}

// RecordBillingRun implements meter.BillingStore. It only moves forward.
func (b *Billing) RecordBillingRun(ctx context.Context, slot time.Time) error {
	_, err := b.db.Exec(ctx, `UPDATE meterd_billing_lease SET last_run = $1 WHERE id = 1 AND (last_run IS NULL OR last_run < $1)`, slot)
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("record billing run: %w", err)
	}
	return err
}
