package ledger

import (
	"context"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// Counter returns the stored counter for one account and period (zero if
// none).
func (l *Ledger) Counter(ctx context.Context, account string, periodStart time.Time) (meter.Counter, error) {
	var c meter.Counter
	err := l.view(ctx, func(tx *bolt.Tx) error {
		c = decodeCounter(account, periodStart, tx.Bucket(bucketUsage).Get(counterKey(account, periodStart)))
		return nil
	})
	return c, err
}

// PeriodCounters implements meter.Store: one read transaction for every
// key, so loading 100,000 accounts at start does not open 100,000.
func (l *Ledger) PeriodCounters(ctx context.Context, keys []meter.CounterKey) ([]meter.Counter, error) {
	out := make([]meter.Counter, len(keys))
	err := l.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsage)
		for i, k := range keys {
			out[i] = decodeCounter(k.AccountID, k.PeriodStart, b.Get(counterKey(k.AccountID, k.PeriodStart)))
		}
		return nil
	})
	return out, err
}

// Counters returns every stored period counter of one account, oldest
// period first.
func (l *Ledger) Counters(ctx context.Context, account string) ([]meter.Counter, error) {
	var out []meter.Counter
	prefix := kindPrefix(account, kindCounter)
	err := l.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUsage).Cursor()
		for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			period := time.Unix(int64(getUint64(k[len(prefix):])), 0).UTC()
			out = append(out, decodeCounter(account, period, v))
		}
		return nil
	})
	return out, err
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}
