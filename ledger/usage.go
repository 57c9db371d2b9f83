package ledger

import (
	"context"
	"encoding/binary"
	"strings"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// DailyUsage returns the account's usage per UTC day from `from` to `to`
// (inclusive days), oldest first, with empty days included. An empty
// account id means every account (the running daily totals).
func (l *Ledger) DailyUsage(ctx context.Context, account string, from, to time.Time) ([]meter.DailyUsage, error) {
	first, last := dayNumber(from), dayNumber(to)
	if last < first {
		return nil, nil
	}
	out := make([]meter.DailyUsage, 0, last-first+1)
	for d := first; d <= last; d++ {
		out = append(out, meter.DailyUsage{Day: dayTime(d)})
	}
	err := l.viewAggs(ctx, func(tx *bolt.Tx, deltas []*aggs) error {
		for _, d := range deltas {
			days := d.total
			if account != "" {
				if x := d.accounts[account]; x != nil {
					days = x.daily
				} else {
					days = nil
				}
			}
			for day, u := range days {
				if day >= first && day <= last {
					out[day-first].Usage.Add(*u)
				}
			}
		}
		bucket, prefix := tx.Bucket(bucketUsage), kindPrefix(account, kindDaily)
		if account == "" {
			bucket, prefix = tx.Bucket(bucketDailyTotal), nil
		}
		c := bucket.Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint32(prefix, first)); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			d := binary.BigEndian.Uint32(k[len(prefix):])
			if d > last {
				break
			}
			out[d-first].Usage.Add(decodeUsage(v))
		}
		return nil
	})
	return out, err
}

// EndpointUsage sums the account's usage per endpoint and method over the
// days from `from` to `to` inclusive. Order is unspecified.
func (l *Ledger) EndpointUsage(ctx context.Context, account string, from, to time.Time) ([]meter.EndpointUsage, error) {
	first, last := dayNumber(from), dayNumber(to)
	sums := map[string]*meter.EndpointUsage{}
	prefix := kindPrefix(account, kindEndpoint)
	add := func(name string, u meter.Usage) {
		e := sums[name]
		if e == nil {
			endpoint, method, _ := strings.Cut(name, "\x00")
			e = &meter.EndpointUsage{Endpoint: endpoint, Method: method}
			sums[name] = e
		}
		e.Add(u)
	}
	err := l.viewAggs(ctx, func(tx *bolt.Tx, deltas []*aggs) error {
		for _, d := range deltas {
			if x := d.accounts[account]; x != nil {
				for k, u := range x.ends {
					if k.day >= first && k.day <= last {
						add(k.endpoint+"\x00"+k.method, *u)
					}
				}
			}
		}
		c := tx.Bucket(bucketUsage).Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint32(prefix, first)); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			rest := k[len(prefix):]
			if len(rest) < 4 || binary.BigEndian.Uint32(rest) > last {
				break
			}
			add(string(rest[4:]), decodeUsage(v))
		}
		return nil
	})
	out := make([]meter.EndpointUsage, 0, len(sums))
	for _, e := range sums {
		out = append(out, *e)
	}
	return out, err
}
