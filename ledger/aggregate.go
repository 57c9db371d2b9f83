package ledger

import (
	"bytes"
	"encoding/binary"
	"sort"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// aggCodecV1 is the usage layout and the first counter layout;
// counterCodecV2 appends the overage calls' summed price (micros) and the
// count of overage calls recorded without one.
const (
	aggCodecV1     = 1
	counterCodecV2 = 2
)

// dayNumber is days since 1970-01-01 UTC: a compact, ordered day key.
func dayNumber(t time.Time) uint32 { return uint32(t.UTC().Unix() / 86400) }

func dayTime(n uint32) time.Time { return time.Unix(int64(n)*86400, 0).UTC() }

func accountPrefix(account string) []byte {
	b := make([]byte, 0, len(account)+1+4+32)
	return append(append(b, account...), 0)
}

// An account's counters, daily totals and per-endpoint daily totals share
// one bucket, keyed account\0 kind ...: a commit that touches one account
// dirties one leaf page, not one per record kind.
const (
	kindCounter  = 'c' // account\0 c period-start(8)
	kindDaily    = 'd' // account\0 d day(4)
	kindEndpoint = 'e' // account\0 e day(4) endpoint\0 method
)

func kindPrefix(account string, kind byte) []byte {
	return append(accountPrefix(account), kind)
}

func counterKey(account string, periodStart time.Time) []byte {
	return binary.BigEndian.AppendUint64(kindPrefix(account, kindCounter), uint64(periodStart.Unix()))
}

func dailyAcctKey(account string, day uint32) []byte {
	return binary.BigEndian.AppendUint32(kindPrefix(account, kindDaily), day)
}

func dailyKey(account string, day uint32, endpoint, method string) []byte {
	b := binary.BigEndian.AppendUint32(kindPrefix(account, kindEndpoint), day)
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
	b := make([]byte, 0, 1+6*8)
	b = append(b, counterCodecV2)
	for _, v := range [...]int64{c.Calls, c.Overage, c.Denied, c.LastCallAt.UnixNano(), c.OverageMicros, c.UnpricedOverage} {
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
	if b[0] >= counterCodecV2 {
		c.OverageMicros, c.UnpricedOverage = int64(d.uint64()), int64(d.uint64())
	} else {
		c.UnpricedOverage = c.Overage
	}
	return c
}

// deltas accumulates one group commit's changes to counters and
// aggregates, so each key is read and written once per commit rather than
// once per event. Map keys are structs, not encoded bytes, so adding an
// event allocates nothing once its keys exist.
type deltas struct {
	counters map[counterK]*meter.Counter
	daily    map[dailyK]*meter.Usage
	acct     map[acctK]*meter.Usage
	total    map[uint32]*meter.Usage
	plan     map[planK]*meter.Usage
}

type counterK struct {
	account string
	period  int64
}

type acctK struct {
	account string
	day     uint32
}

type dailyK struct {
	acctK
	endpoint, method string
}

func newDeltas() *deltas {
	return &deltas{counters: map[counterK]*meter.Counter{}, daily: map[dailyK]*meter.Usage{},
		acct: map[acctK]*meter.Usage{}, total: map[uint32]*meter.Usage{},
		plan: map[planK]*meter.Usage{}}
}

func (d *deltas) addEvent(ev *meter.Event) {
	ck := counterK{ev.AccountID, ev.PeriodStart.Unix()}
	c := d.counters[ck]
	if c == nil {
		c = &meter.Counter{AccountID: ev.AccountID, PeriodStart: ev.PeriodStart}
		d.counters[ck] = c
	}
	c.Count(ev)
	ak := acctK{ev.AccountID, dayNumber(ev.Time)}
	usageOf(d.daily, dailyK{ak, ev.Endpoint, ev.Method}).AddEvent(ev)
	usageOf(d.acct, ak).AddEvent(ev)
	usageOf(d.total, ak.day).AddEvent(ev)
	if ev.Plan != "" {
		usageOf(d.plan, planK{ev.Plan, ak.day}).AddEvent(ev)
	}
}

func usageOf[K comparable](m map[K]*meter.Usage, k K) *meter.Usage {
	u := m[k]
	if u == nil {
		u = &meter.Usage{}
		m[k] = u
	}
	return u
}

// keyed is one stored record to merge a delta into: usage for aggregates,
// counter for period counters.
type keyed struct {
	key     []byte
	usage   *meter.Usage
	counter *meter.Counter
}

// apply merges the deltas into the stored records, in key order (bbolt
// writes sorted keys most cheaply).
func (d *deltas) apply(tx *bolt.Tx) error {
	usage := tx.Bucket(bucketUsage)
	if err := d.applyCounters(usage); err != nil {
		return err
	}
	daily := make([]keyed, 0, len(d.daily))
	for k, u := range d.daily {
		daily = append(daily, keyed{key: dailyKey(k.account, k.day, k.endpoint, k.method), usage: u})
	}
	acct := make([]keyed, 0, len(d.acct))
	for k, u := range d.acct {
		acct = append(acct, keyed{key: dailyAcctKey(k.account, k.day), usage: u})
	}
	total := make([]keyed, 0, len(d.total))
	for day, u := range d.total {
		total = append(total, keyed{key: binary.BigEndian.AppendUint32(nil, day), usage: u})
	}
	for _, set := range []struct {
		b    []byte
		recs []keyed
	}{{bucketUsage, append(daily, acct...)}, {bucketDailyTotal, total}, {bucketPlanDaily, d.planRecords()}} {
		if err := mergeUsage(tx.Bucket(set.b), set.recs); err != nil {
			return err
		}
	}
	return nil
}

func (d *deltas) applyCounters(b *bolt.Bucket) error {
	recs := make([]keyed, 0, len(d.counters))
	for _, c := range d.counters {
		recs = append(recs, keyed{key: counterKey(c.AccountID, c.PeriodStart), counter: c})
	}
	sortKeyed(recs)
	for _, r := range recs {
		delta := r.counter
		cur := decodeCounter(delta.AccountID, delta.PeriodStart, b.Get(r.key))
		cur.Add(*delta)
		if err := b.Put(r.key, encodeCounter(&cur)); err != nil {
			return err
		}
	}
	return nil
}

func mergeUsage(b *bolt.Bucket, recs []keyed) error {
	sortKeyed(recs)
	for _, r := range recs {
		cur := decodeUsage(b.Get(r.key))
		cur.Add(*r.usage)
		if err := b.Put(r.key, encodeUsage(&cur)); err != nil {
			return err
		}
	}
	return nil
}

func sortKeyed(recs []keyed) {
	sort.Slice(recs, func(i, j int) bool { return bytes.Compare(recs[i].key, recs[j].key) < 0 })
}
