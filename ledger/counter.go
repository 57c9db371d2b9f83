package ledger

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// Counter returns one account's counter for one period (zero if none): the
// stored row plus the events since the last checkpoint.
func (l *Ledger) Counter(ctx context.Context, account string, periodStart time.Time) (meter.Counter, error) {
	out, err := l.PeriodCounters(ctx, []meter.CounterKey{{AccountID: account, PeriodStart: periodStart}})
	if err != nil {
		return meter.Counter{}, err
	}
	return out[0], nil
}

// PeriodCounters implements meter.Store: one read transaction for every
// key, so loading 100,000 accounts at start does not open 100,000.
func (l *Ledger) PeriodCounters(ctx context.Context, keys []meter.CounterKey) ([]meter.Counter, error) {
	out := make([]meter.Counter, len(keys))
	err := l.viewAggs(ctx, func(tx *bolt.Tx, deltas []*aggs) error {
		b := tx.Bucket(bucketUsage)
		for i, k := range keys {
			out[i] = decodeCounter(k.AccountID, k.PeriodStart, b.Get(counterKey(k.AccountID, k.PeriodStart)))
			for _, d := range deltas {
				out[i].Add(d.counter(k.AccountID, k.PeriodStart))
			}
		}
		return nil
	})
	return out, err
}

// Counters returns every period counter of one account, oldest period
// first.
func (l *Ledger) Counters(ctx context.Context, account string) ([]meter.Counter, error) {
	byPeriod := map[int64]*meter.Counter{}
	prefix := kindPrefix(account, kindCounter)
	err := l.viewAggs(ctx, func(tx *bolt.Tx, deltas []*aggs) error {
		c := tx.Bucket(bucketUsage).Cursor()
		for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			p := int64(getUint64(k[len(prefix):]))
			stored := decodeCounter(account, time.Unix(p, 0).UTC(), v)
			byPeriod[p] = &stored
		}
		for _, d := range deltas {
			x := d.accounts[account]
			if x == nil {
				continue
			}
			for p, dc := range x.counters {
				cur := byPeriod[p]
				if cur == nil {
					cur = &meter.Counter{AccountID: account, PeriodStart: dc.PeriodStart}
					byPeriod[p] = cur
				}
				cur.Add(*dc)
			}
		}
		return nil
	})
	out := make([]meter.Counter, 0, len(byPeriod))
	for _, p := range slices.Sorted(maps.Keys(byPeriod)) {
		out = append(out, *byPeriod[p])
	}
	return out, err
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}
