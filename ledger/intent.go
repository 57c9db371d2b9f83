package ledger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

var _ meter.BillingStore = (*Ledger)(nil)

// Billing buckets. They are created by the first write that needs them, so
// a ledger that never bills has none; readers treat a missing bucket as
// empty. Keys start with the big-endian period start, so one month's
// intents are one contiguous range.
var (
	bucketBillIntents = []byte("billing_intents") // period account\0 seq -> intent JSON
	bucketBillOpen    = []byte("billing_open")    // intent key -> nothing, for pending and sent intents
	bucketBillState   = []byte("billing_state")   // period account\0 -> state JSON
	bucketBillLease   = []byte("billing_lease")   // "lease" -> lease JSON
	leaseKey          = []byte("lease")
)

func billPeriodKey(account string, periodStart time.Time) []byte {
	b := make([]byte, 0, 8+len(account)+1+4)
	b = binary.BigEndian.AppendUint64(b, uint64(periodStart.Unix()))
	return append(append(b, account...), 0)
}

func intentKey(account string, periodStart time.Time, seq uint32) []byte {
	return binary.BigEndian.AppendUint32(billPeriodKey(account, periodStart), seq)
}

// getJSON decodes the value at key into v; found is false if there is none.
func getJSON(b *bolt.Bucket, key []byte, v any) (found bool, err error) {
	if b == nil {
		return false, nil
	}
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode %T at %q: %w", v, key, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// billingBuckets creates (if needed) and returns the buckets a billing
// write touches.
type billingBuckets struct {
	intents, open, state, lease *bolt.Bucket
}

func openBillingBuckets(tx *bolt.Tx) (billingBuckets, error) {
	var bb billingBuckets
	for _, p := range []struct {
		dst  **bolt.Bucket
		name []byte
	}{{&bb.intents, bucketBillIntents}, {&bb.open, bucketBillOpen}, {&bb.state, bucketBillState}, {&bb.lease, bucketBillLease}} {
		b, err := tx.CreateBucketIfNotExists(p.name)
		if err != nil {
			return bb, err
		}
		*p.dst = b
	}
	return bb, nil
}

func getLease(b *bolt.Bucket) (meter.BillingLease, error) {
	var lease meter.BillingLease
	_, err := getJSON(b, leaseKey, &lease)
	return lease, err
}

// holds reports whether owner holds the lease as stored. Expiry is not
// checked: while the record names owner nobody else has taken it.
func holds(b *bolt.Bucket, owner string) (bool, error) {
	lease, err := getLease(b)
	return err == nil && owner != "" && lease.Owner == owner, err
}

func getState(b *bolt.Bucket, account string, periodStart time.Time) (meter.BillingState, error) {
	st := meter.BillingState{AccountID: account, PeriodStart: periodStart.UTC()}
	_, err := getJSON(b, billPeriodKey(account, periodStart), &st)
	return st, err
}

// AcquireBillingLease implements meter.BillingStore. The check and the
// write are one transaction of the writer, so two runs cannot both win.
func (l *Ledger) AcquireBillingLease(ctx context.Context, owner string, now time.Time, ttl time.Duration) (meter.BillingLease, error) {
	if owner == "" || ttl <= 0 {
		return meter.BillingLease{}, meter.Invalid("lease", "needs an owner and a positive ttl")
	}
	var got meter.BillingLease
	var busy bool
	err := l.update(ctx, func(tx *bolt.Tx) error {
		bb, err := openBillingBuckets(tx)
		if err != nil {
			return err
		}
		cur, err := getLease(bb.lease)
		if err != nil {
			return err
		}
		if cur.Owner != "" && cur.Owner != owner && now.Before(cur.Expires) {
			got, busy = cur, true
			return nil
		}
		got, busy = meter.BillingLease{Owner: owner, Expires: now.Add(ttl).UTC()}, false
		return putJSON(bb.lease, leaseKey, got)
	})
	switch {
	case err != nil:
		return meter.BillingLease{}, fmt.Errorf("acquire billing lease: %w", err)
	case busy:
		return got, fmt.Errorf("%w: lease held by %s until %s", meter.ErrBillingBusy, got.Owner, got.Expires.Format(time.RFC3339))
	}
	return got, nil
}

// ReleaseBillingLease implements meter.BillingStore.
func (l *Ledger) ReleaseBillingLease(ctx context.Context, owner string) error {
	err := l.update(ctx, func(tx *bolt.Tx) error {
		bb, err := openBillingBuckets(tx)
		if err != nil {
			return err
		}
		if ok, err := holds(bb.lease, owner); !ok || err != nil {
			return err
		}
		return bb.lease.Delete(leaseKey)
	})
	if err != nil {
		return fmt.Errorf("release billing lease: %w", err)
	}
	return nil
}

// BillingState implements meter.BillingStore.
func (l *Ledger) BillingState(ctx context.Context, account string, periodStart time.Time) (meter.BillingState, error) {
	var st meter.BillingState
	err := l.view(ctx, func(tx *bolt.Tx) error {
		var err error
		st, err = getState(tx.Bucket(bucketBillState), account, periodStart)
		return err
	})
	return st, err
}

// updateLeased runs fn in the writer's next transaction if owner holds the
// billing lease, else changes nothing and returns meter.ErrBillingBusy. A
// refusal (a billing rule saying no) is returned as the error without
// failing the transaction: an error there would abort the whole group
// commit, other writers' ops included.
func (l *Ledger) updateLeased(ctx context.Context, owner string, fn func(bb billingBuckets) (refusal, err error)) error {
	var refusal error
	err := l.update(ctx, func(tx *bolt.Tx) error {
		bb, err := openBillingBuckets(tx)
		if err != nil {
			return err
		}
		refusal = nil
		if ok, err := holds(bb.lease, owner); err != nil || !ok {
			refusal = meter.ErrBillingBusy
			return err
		}
		refusal, err = fn(bb)
		return err
	})
	if err == nil {
		err = refusal
	}
	return err
}

// CreateBillingIntent implements meter.BillingStore.
func (l *Ledger) CreateBillingIntent(ctx context.Context, owner string, in meter.BillingIntent, billedCents int64) (meter.BillingIntent, error) {
	if in.AccountID == "" || in.AmountCents <= 0 || in.PeriodStart.IsZero() || in.CreatedAt.IsZero() {
		return meter.BillingIntent{}, meter.Invalid("intent", "needs an account, a period, a creation time and a positive amount")
	}
	err := l.updateLeased(ctx, owner, func(bb billingBuckets) (refusal, err error) {
		st, err := getState(bb.state, in.AccountID, in.PeriodStart)
		if err != nil {
			return nil, err
		}
		if refusal := meter.CheckNewIntent(st, in, billedCents); refusal != nil {
			return refusal, nil
		}
		st.LastSeq++
		st.OpenSeq = st.LastSeq
		in = meter.NewIntent(in, st.LastSeq)
		return nil, putIntent(bb, st, in)
	})
	if err != nil {
		return meter.BillingIntent{}, fmt.Errorf("create billing intent for %s: %w", in.AccountID, err)
	}
	return in, nil
}

// putIntent writes an intent with its period state and open-index entry.
func putIntent(bb billingBuckets, st meter.BillingState, in meter.BillingIntent) error {
	key := intentKey(in.AccountID, in.PeriodStart, in.Seq)
	if err := putJSON(bb.intents, key, in); err != nil {
		return err
	}
	if err := putJSON(bb.state, billPeriodKey(in.AccountID, in.PeriodStart), st); err != nil {
		return err
	}
	if in.Status.Open() {
		return bb.open.Put(key, nil)
	}
	return bb.open.Delete(key)
}

// UpdateBillingIntent implements meter.BillingStore.
func (l *Ledger) UpdateBillingIntent(ctx context.Context, u meter.IntentUpdate) (meter.BillingIntent, error) {
	switch {
	case u.Status != meter.IntentSent && u.Status != meter.IntentDone && u.Status != meter.IntentFailed:
		return meter.BillingIntent{}, meter.Invalid("status", "must be sent, done or failed, not %q", u.Status)
	case u.Status == meter.IntentDone && u.StripeID == "":
		return meter.BillingIntent{}, meter.Invalid("stripe_id", "is required for a done intent")
	}
	var out meter.BillingIntent
	var found bool
	err := l.update(ctx, func(tx *bolt.Tx) error {
		bb, err := openBillingBuckets(tx)
		if err != nil {
			return err
		}
		var it meter.BillingIntent
		found, err = getJSON(bb.intents, intentKey(u.AccountID, u.PeriodStart, u.Seq), &it)
		if err != nil || !found || !it.Status.Open() {
			out = it
			return err
		}
		st, err := getState(bb.state, u.AccountID, u.PeriodStart)
		if err != nil {
			return err
		}
		meter.ApplyIntentUpdate(&it, &st, u)
		out = it
		return putIntent(bb, st, it)
	})
	if err == nil && !found {
		err = meter.ErrIntentNotFound
	}
	if err != nil {
		return meter.BillingIntent{}, fmt.Errorf("update billing intent %s: %w", meter.IntentKey(u.AccountID, u.PeriodStart, u.Seq), err)
	}
	return out, nil
}

// OpenBillingIntents implements meter.BillingStore.
func (l *Ledger) OpenBillingIntents(ctx context.Context) ([]meter.BillingIntent, error) {
	var out []meter.BillingIntent
	err := l.view(ctx, func(tx *bolt.Tx) error {
		open, intents := tx.Bucket(bucketBillOpen), tx.Bucket(bucketBillIntents)
		if open == nil {
			return nil
		}
		return open.ForEach(func(k, _ []byte) error {
			var it meter.BillingIntent
			if _, err := getJSON(intents, k, &it); err != nil {
				return err
			}
			out = append(out, it)
			return nil
		})
	})
	return out, err
}

// BillingIntents implements meter.BillingStore. The range is one cursor
// walk: keys start with the period.
func (l *Ledger) BillingIntents(ctx context.Context, from, to time.Time) ([]meter.BillingIntent, error) {
	var out []meter.BillingIntent
	end := uint64(to.Unix())
	err := l.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBillIntents)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, uint64(from.Unix()))); k != nil && binary.BigEndian.Uint64(k) < end; k, v = c.Next() {
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

// FinalizeBillingPeriod implements meter.BillingStore.
func (l *Ledger) FinalizeBillingPeriod(ctx context.Context, owner, account string, periodStart, at time.Time) error {
	err := l.updateLeased(ctx, owner, func(bb billingBuckets) (refusal, err error) {
		st, err := getState(bb.state, account, periodStart)
		if err != nil || st.Final {
			return nil, err
		}
		if refusal := meter.CheckFinalize(st); refusal != nil {
			return refusal, nil
		}
		st.Final, st.FinalizedAt = true, at.UTC()
		return nil, putJSON(bb.state, billPeriodKey(account, periodStart), st)
	})
	if err != nil {
		return fmt.Errorf("finalize billing period of %s: %w", account, err)
	}
	return nil
}
