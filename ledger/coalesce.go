package ledger

import "github.com/meterd/meterd/meter"

// Coalesced denials. A client hammering an exhausted key sends thousands
// of denials a second; stored one record each they would grow every group
// commit that paying callers wait for. So the writer stores the answered
// denials of one group that share an account, key, endpoint template,
// method, status and UTC day as ONE record whose Coalesced field carries
// their number. Everything that counts (counters, daily aggregates,
// checkpoint replay, verify, the Postgres export) counts that record as
// its N calls through meter.Event.Calls.
//
// A denial keeps its own record when somebody may ask for it by id or
// position: one that carries an idempotency id (its caller waits for the
// commit, and a retry finds it by id) or notices (the limit_reached
// webhook rides on the first denial, so it stays exactly that call).

// denialKey is what coalesced denials have in common.
type denialKey struct {
	account, key, endpoint, method string
	status                         int
	period                         int64
	day                            uint32
}

// coalescable reports whether o is a denial whose record may be shared:
// answered already (nobody waits for its sequence number), with no
// idempotency id and no notices.
func coalescable(o *op) bool {
	ev := o.ev
	return ev != nil && o.done == nil && ev.Decision == meter.Denied &&
		ev.IdempotencyKey == "" && ev.Notices == nil && ev.Coalesced == 0
}

// denialPlan says how a group's events are stored: into[i] is the index
// of the op whose record holds op i's call (i itself for an op with its
// own record), and merged holds, for the first op of each set of two or
// more coalesced denials, the record that stands for all of them.
type denialPlan struct {
	into   []int
	merged map[int]*meter.Event
}

// planDenials coalesces the group's answered denials; nil when there is
// nothing to merge, so a group without a flood pays one pass and no
// allocation.
func planDenials(batch []*op) *denialPlan {
	n := 0
	for _, o := range batch {
		if coalescable(o) {
			n++
		}
	}
	if n < 2 {
		return nil
	}
	p := &denialPlan{into: make([]int, len(batch)), merged: map[int]*meter.Event{}}
	first := make(map[denialKey]int, 4)
	for i, o := range batch {
		p.into[i] = i
		if !coalescable(o) {
			continue
		}
		k := keyOfDenial(o.ev)
		f, ok := first[k]
		if !ok {
			first[k] = i
			continue
		}
		p.into[i] = f
		p.addTo(f, batch[f].ev, o.ev)
	}
	return p
}

func keyOfDenial(ev *meter.Event) denialKey {
	return denialKey{account: ev.AccountID, key: ev.KeyID, endpoint: ev.Endpoint, method: ev.Method,
		status: ev.Status, period: ev.PeriodStart.Unix(), day: dayNumber(ev.Time)}
}

// addTo adds ev to the record of the set that head opens. The record is a
// copy, so the ops' own events stay single calls (a failed commit retries
// them and plans again); the writer folds the copy into the aggregates.
// It carries the latest time of the set, as the live counter's LastCallAt
// does.
func (p *denialPlan) addTo(f int, head, ev *meter.Event) {
	m := p.merged[f]
	if m == nil {
		c := *head
		c.Coalesced = 1
		m = &c
		p.merged[f] = m
	}
	m.Coalesced++
	if ev.Time.After(m.Time) {
		m.Time = ev.Time
	}
}

// record returns the op whose record holds op i's call, and the record to
// store for op i: its own encoding, a coalesced one, or nil when op i's
// call is stored in an earlier op's record.
func (p *denialPlan) record(i int, o *op) (into int, val []byte) {
	if p == nil {
		return i, o.val
	}
	if f := p.into[i]; f != i {
		return f, nil
	}
	if m := p.merged[i]; m != nil {
		return i, encodeEvent(make([]byte, 0, len(o.val)+4), m)
	}
	return i, o.val
}

// stored is the event op i's record holds, once committed: its own, the
// coalesced one of a set it opens, or nil when its call is in an earlier
// op's record. Folding these into the aggregates counts each call once.
func (p *denialPlan) stored(i int, o *op) *meter.Event {
	if p == nil {
		return o.ev
	}
	if p.into[i] != i {
		return nil
	}
	if m := p.merged[i]; m != nil {
		m.Seq = o.ev.Seq // assigned at commit (applyBatch)
		return m
	}
	return o.ev
}
