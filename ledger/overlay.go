package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// aggs holds period counters and daily aggregates as deltas over what the
// file holds: the events committed since the last checkpoint, folded in
// memory. Reads add them to the stored rows; a checkpoint writes them.
// Maps are keyed by account first, so a read of one account never walks
// the others.
type aggs struct {
	accounts map[string]*acctAggs
	total    map[uint32]*meter.Usage
	// plan holds the per-plan daily totals (plantotal.go).
	plan map[planK]*meter.Usage
	// upTo is the newest event sequence folded in; events counts them.
	upTo   uint64
	events int
}

type acctAggs struct {
	counters map[int64]*meter.Counter // by period start (unix seconds)
	daily    map[uint32]*meter.Usage  // by day number
	ends     map[endK]*meter.Usage
}

// endK names one per-endpoint daily row of an account.
type endK struct {
	day              uint32
	endpoint, method string
}

func newAggs(upTo uint64) *aggs {
	return &aggs{accounts: map[string]*acctAggs{}, total: map[uint32]*meter.Usage{}, plan: map[planK]*meter.Usage{}, upTo: upTo}
}

func (a *aggs) account(id string) *acctAggs {
	x := a.accounts[id]
	if x == nil {
		x = &acctAggs{counters: map[int64]*meter.Counter{}, daily: map[uint32]*meter.Usage{}, ends: map[endK]*meter.Usage{}}
		a.accounts[id] = x
	}
	return x
}

// add folds one committed event in: the counting rule is meter.Counter's
// and meter.Usage's, written once in meter.
func (a *aggs) add(ev *meter.Event) {
	x := a.account(ev.AccountID)
	c := x.counters[ev.PeriodStart.Unix()]
	if c == nil {
		c = &meter.Counter{AccountID: ev.AccountID, PeriodStart: ev.PeriodStart}
		x.counters[ev.PeriodStart.Unix()] = c
	}
	c.Count(ev)
	day := dayNumber(ev.Time)
	usageOf(x.daily, day).AddEvent(ev)
	usageOf(x.ends, endK{day, ev.Endpoint, ev.Method}).AddEvent(ev)
	usageOf(a.total, day).AddEvent(ev)
	if ev.Plan != "" {
		usageOf(a.plan, planK{ev.Plan, day}).AddEvent(ev)
	}
	a.upTo = max(a.upTo, ev.Seq)
	a.events++
}

// merge folds b into a (a checkpoint that failed gives its deltas back).
func (a *aggs) merge(b *aggs) {
	for id, bx := range b.accounts {
		x := a.account(id)
		for p, c := range bx.counters {
			cur := x.counters[p]
			if cur == nil {
				cur = &meter.Counter{AccountID: c.AccountID, PeriodStart: c.PeriodStart}
				x.counters[p] = cur
			}
			cur.Add(*c)
		}
		for d, u := range bx.daily {
			usageOf(x.daily, d).Add(*u)
		}
		for k, u := range bx.ends {
			usageOf(x.ends, k).Add(*u)
		}
	}
	for d, u := range b.total {
		usageOf(a.total, d).Add(*u)
	}
	for k, u := range b.plan {
		usageOf(a.plan, k).Add(*u)
	}
	a.upTo, a.events = max(a.upTo, b.upTo), a.events+b.events
}

func usageOf[K comparable](m map[K]*meter.Usage, k K) *meter.Usage {
	u := m[k]
	if u == nil {
		u = &meter.Usage{}
		m[k] = u
	}
	return u
}

// write merges the deltas into the stored rows, in key order (bbolt
// writes sorted keys most cheaply): the body of a checkpoint.
func (a *aggs) write(tx *bolt.Tx) error {
	recs := make([]keyed, 0, 4*len(a.accounts))
	for id, x := range a.accounts {
		for _, c := range x.counters {
			recs = append(recs, keyed{key: counterKey(id, c.PeriodStart), counter: c})
		}
		for d, u := range x.daily {
			recs = append(recs, keyed{key: dailyAcctKey(id, d), usage: u})
		}
		for k, u := range x.ends {
			recs = append(recs, keyed{key: dailyKey(id, k.day, k.endpoint, k.method), usage: u})
		}
	}
	if err := mergeRows(tx.Bucket(bucketUsage), recs); err != nil {
		return err
	}
	total := make([]keyed, 0, len(a.total))
	for d, u := range a.total {
		total = append(total, keyed{key: binary.BigEndian.AppendUint32(nil, d), usage: u})
	}
	if err := mergeRows(tx.Bucket(bucketDailyTotal), total); err != nil {
		return err
	}
	return mergeRows(tx.Bucket(bucketPlanDaily), a.planRecords())
}

// keyed is one stored row to merge a delta into: usage for aggregates,
// counter for period counters.
type keyed struct {
	key     []byte
	usage   *meter.Usage
	counter *meter.Counter
}

func sortKeyed(recs []keyed) {
	slices.SortFunc(recs, func(a, b keyed) int { return bytes.Compare(a.key, b.key) })
}

func mergeRows(b *bolt.Bucket, recs []keyed) error {
	sortKeyed(recs)
	for _, r := range recs {
		var v []byte
		if r.counter != nil {
			cur := decodeCounter(r.counter.AccountID, r.counter.PeriodStart, b.Get(r.key))
			cur.Add(*r.counter)
			v = encodeCounter(&cur)
		} else {
			cur := decodeUsage(b.Get(r.key))
			cur.Add(*r.usage)
			v = encodeUsage(&cur)
		}
		if err := b.Put(r.key, v); err != nil {
			return err
		}
	}
	return nil
}

// counter returns the deltas' counter for an account and period (zero if
// none).
func (a *aggs) counter(account string, period time.Time) meter.Counter {
	if x := a.accounts[account]; x != nil {
		if c := x.counters[period.Unix()]; c != nil {
			return *c
		}
	}
	return meter.Counter{}
}

// viewAggs runs a read transaction together with the in-memory deltas
// that the stored rows it sees do not cover yet: live always, folding only
// while its checkpoint has not committed (checkpoint_seq below its upTo).
// aggMu is held shared throughout, so the writer cannot move deltas
// between the two while fn reads.
func (l *Ledger) viewAggs(ctx context.Context, fn func(tx *bolt.Tx, deltas []*aggs) error) error {
	l.aggMu.RLock()
	defer l.aggMu.RUnlock()
	return l.view(ctx, func(tx *bolt.Tx) error {
		deltas := make([]*aggs, 0, 2)
		if f := l.folding; f != nil && checkpointSeq(tx) < f.upTo {
			deltas = append(deltas, f)
		}
		if l.live != nil {
			deltas = append(deltas, l.live)
		}
		return fn(tx, deltas)
	})
}
