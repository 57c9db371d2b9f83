package ledger

import (
	"encoding/binary"
	"sort"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

const aggCodecV1 = 1

// dayNumber is days since 1970-01-01 UTC: a compact, ordered day key.
func dayNumber(t time.Time) uint32 { return uint32(t.UTC().Unix() / 86400) }

func dayTime(n uint32) time.Time { return time.Unix(int64(n)*86400, 0).UTC() }

func accountPrefix(account string) []byte {
	b := make([]byte, 0, len(account)+1+4+32)
	return append(append(b, account...), 0)
}

func counterKey(account string, periodStart time.Time) []byte {
	return binary.BigEndian.AppendUint64(accountPrefix(account), uint64(periodStart.Unix()))
}

func dailyAcctKey(account string, day uint32) []byte {
	return binary.BigEndian.AppendUint32(accountPrefix(account), day)
}

func dailyKey(account string, day uint32, endpoint, method string) []byte {
	b := dailyAcctKey(account, day)
	b = append(append(b, endpoint...), 0)
	return append(b, method...)
}

func encodeUsage(u *meter.Usage) []byte {
	b := make([]byte, 0, 1+7*8)
	b = append(b, aggCodecV1)
	for _, v := range [...]int64{u.Calls, u.Overage, u.Denied, u.Errors, u.ClientErrors, u.LatencySumMicros, u.LatencyCount} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func decodeUsage(b []byte) meter.Usage {
	var u meter.Usage
	if len(b) == 0 {
		return u
	}
	d := decoder{b: b[1:]}
	for _, p := range [...]*int64{&u.Calls, &u.Overage, &u.Denied, &u.Errors, &u.ClientErrors, &u.LatencySumMicros, &u.LatencyCount} {
		*p = int64(d.uint64())
	}
	return u
}

// counterValue is the stored form of a period counter.
func encodeCounter(c *meter.Counter) []byte {
	b := make([]byte, 0, 1+4*8)
	b = append(b, aggCodecV1)
	for _, v := range [...]int64{c.Calls, c.Overage, c.Denied, c.LastCallAt.UnixNano()} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func decodeCounter(account string, period time.Time, b []byte) meter.Counter {
	c := meter.Counter{AccountID: account, PeriodStart: period}
	if len(b) == 0 {
		return c
	}
	d := decoder{b: b[1:]}
	c.Calls, c.Overage, c.Denied = int64(d.uint64()), int64(d.uint64()), int64(d.uint64())
	if ns := int64(d.uint64()); ns != 0 {
		c.LastCallAt = time.Unix(0, ns).UTC()
	}
	return c
}

// deltas accumulates one group commit's changes to counters and
// aggregates, so each key is read and written once per commit rather than
// once per event.
type deltas struct {
	counters map[string]*meter.Counter
	usage    map[string]*usageDelta // full key -> delta, per bucket below
}

type usageDelta struct {
	bucket []byte
	usage  meter.Usage
}

func newDeltas() *deltas {
	return &deltas{counters: map[string]*meter.Counter{}, usage: map[string]*usageDelta{}}
}

func (d *deltas) addEvent(ev *meter.Event) {
	ck := string(counterKey(ev.AccountID, ev.PeriodStart))
	c := d.counters[ck]
	if c == nil {
		c = &meter.Counter{AccountID: ev.AccountID, PeriodStart: ev.PeriodStart}
		d.counters[ck] = c
	}
	if ev.Decision == meter.Denied {
		c.Denied++
	} else {
		c.Calls++
		if ev.Overage {
			c.Overage++
		}
	}
	if ev.Time.After(c.LastCallAt) {
		c.LastCallAt = ev.Time
	}
	day := dayNumber(ev.Time)
	d.addUsage(bucketDaily, dailyKey(ev.AccountID, day, ev.Endpoint, ev.Method), ev)
	d.addUsage(bucketDailyAcct, dailyAcctKey(ev.AccountID, day), ev)
	d.addUsage(bucketDailyTotal, binary.BigEndian.AppendUint32(nil, day), ev)
}

func (d *deltas) addUsage(bucket, key []byte, ev *meter.Event) {
	// The bucket name is folded into the map key so equal keys in different
	// buckets stay apart.
	mk := string(bucket) + "|" + string(key)
	u := d.usage[mk]
	if u == nil {
		u = &usageDelta{bucket: bucket}
		d.usage[mk] = u
	}
	u.usage.AddEvent(ev)
}

// apply merges the deltas into the stored records, in key order (bbolt
// writes sorted keys most cheaply).
func (d *deltas) apply(tx *bolt.Tx) error {
	counters := tx.Bucket(bucketCounters)
	for _, k := range sortedKeys(d.counters) {
		delta := d.counters[k]
		cur := decodeCounter(delta.AccountID, delta.PeriodStart, counters.Get([]byte(k)))
		cur.Calls += delta.Calls
		cur.Overage += delta.Overage
		cur.Denied += delta.Denied
		if delta.LastCallAt.After(cur.LastCallAt) {
			cur.LastCallAt = delta.LastCallAt
		}
		if err := counters.Put([]byte(k), encodeCounter(&cur)); err != nil {
			return err
		}
	}
	for _, mk := range sortedKeys(d.usage) {
		u := d.usage[mk]
		b := tx.Bucket(u.bucket)
		key := []byte(mk[len(u.bucket)+1:])
		cur := decodeUsage(b.Get(key))
		cur.Add(u.usage)
		if err := b.Put(key, encodeUsage(&cur)); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
