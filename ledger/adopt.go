package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// lastRunKey holds, in the lease bucket, the slot of the last scheduled
// billing run that completed (RFC 3339).
var lastRunKey = []byte("last_run")

// PeriodIntents implements meter.BillingStore: one account period's
// intents by Seq, one prefix walk.
func (l *Ledger) PeriodIntents(ctx context.Context, account string, periodStart time.Time) ([]meter.BillingIntent, error) {
	var out []meter.BillingIntent
	prefix := billPeriodKey(account, periodStart)
	err := l.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBillIntents)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			var it meter.BillingIntent
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("decode intent %q: %w", k, err)
			}
			out = append(out, it)
		}
		return nil
	})
	return out, err
}

// AdoptStripeCharges implements meter.BillingStore: the adopted intents,
// the period's billed totals and its reconciled epoch change in one
// transaction, under the lease.
func (l *Ledger) AdoptStripeCharges(ctx context.Context, owner, account string, periodStart time.Time,
	adopt []meter.BillingIntent, epoch uint64) (meter.BillingState, error) {
	var st meter.BillingState
	err := l.updateLeased(ctx, owner, func(bb billingBuckets) (refusal, err error) {
		if st, err = getState(bb.state, account, periodStart); err != nil {
			return nil, err
		}
		for _, in := range adopt {
			if err := adoptOne(bb, &st, in); err != nil {
				return nil, err
			}
		}
		st.Epoch = max(st.Epoch, epoch)
		return nil, putJSON(bb.state, billPeriodKey(account, periodStart), st)
	})
	if err != nil {
		return meter.BillingState{}, fmt.Errorf("adopt Stripe charges of %s: %w", account, err)
	}
	return st, nil
}

// adoptOne records one item Stripe holds as a done intent, unless the
// ledger already has it done.
func adoptOne(bb billingBuckets, st *meter.BillingState, in meter.BillingIntent) error {
	var cur meter.BillingIntent
	found, err := getJSON(bb.intents, intentKey(in.AccountID, in.PeriodStart, in.Seq), &cur)
	if err != nil || (found && cur.Status == meter.IntentDone) {
		return err
	}
	if found && in.PeriodEnd.IsZero() {
		in.PeriodEnd = cur.PeriodEnd
	}
	meter.ApplyAdoption(st, in, found && cur.Status.Open())
	return putIntent(bb, *st, in)
}

// LastBillingRun implements meter.BillingStore.
func (l *Ledger) LastBillingRun(ctx context.Context) (time.Time, error) {
	var at time.Time
	err := l.view(ctx, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketBillLease); b != nil && b.Get(lastRunKey) != nil {
			return at.UnmarshalText(b.Get(lastRunKey))
		}
		return nil
	})
	return at, err
}

// RecordBillingRun implements meter.BillingStore. It only moves forward.
func (l *Ledger) RecordBillingRun(ctx context.Context, slot time.Time) error {
	return l.update(ctx, func(tx *bolt.Tx) error {
		bb, err := openBillingBuckets(tx)
		if err != nil {
			return err
		}
		var cur time.Time
		if raw := bb.lease.Get(lastRunKey); raw != nil {
			if err := cur.UnmarshalText(raw); err != nil {
				return err
			}
		}
		if !slot.After(cur) {
			return nil
		}
		raw, err := slot.UTC().MarshalText()
		if err != nil {
			return err
		}
		return bb.lease.Put(lastRunKey, raw)
	})
}
