package meter

import (
	"container/heap"
	"sync"
	"time"
)

// periodFigures are what one account's current period adds to the
// overview.
type periodFigures struct{ overageCents, atLimit, nearLimit, inOverage int64 }

func (f *periodFigures) add(o periodFigures, sign int64) {
	f.overageCents += sign * o.overageCents
	f.atLimit += sign * o.atLimit
	f.nearLimit += sign * o.nearLimit
	f.inOverage += sign * o.inOverage
}

// contribution is one account's share of the overview.
type contribution struct {
	plan  string // "" before the account is counted
	price int64
	end   int64 // its period's end (unix ns): the figures are that period's
	fig   periodFigures
}

func (s *accountState) contributionLocked() contribution {
	c := contribution{plan: s.plan.Name, price: s.plan.Price(&s.acct), end: s.period.End.UnixNano()}
	c.fig.overageCents = MicrosToCents(s.overageMicros)
	if s.plan.Unlimited() {
		return c
	}
	if s.plan.Hard && s.denied > 0 {
		c.fig.atLimit = 1
	}
	if s.calls*100 >= s.plan.Limit*NearLimitPercent {
		c.fig.nearLimit = 1
	}
	if !s.plan.Hard && s.calls > s.plan.Limit {
		c.fig.inOverage = 1
	}
	return c
}

// overviewTotals keep the overview as running totals, so reading it costs
// O(plans), not O(accounts). Every change to an account's plan, price or
// counts reports the account's contribution before and after (move).
//
// Periods roll lazily (an account's counters reset on its next access),
// so period figures are kept per period end: when the clock passes an
// end, that bucket is dropped whole, which is exactly what rolling every
// account of that period would do. A bucket dropped stays dropped even if
// the clock steps back.
type overviewTotals struct {
	mu          sync.Mutex
	byPlan      map[string]int64
	total, mrr  int64
	sums        periodFigures            // over the live buckets
	buckets     map[int64]*periodFigures // by period end
	ends        endHeap
	expiredUpTo int64 // buckets ending at or before this are gone
}

func newOverviewTotals() *overviewTotals {
	return &overviewTotals{byPlan: map[string]int64{}, buckets: map[int64]*periodFigures{}}
}

// move replaces an account's contribution before by after. A nil
// receiver does nothing.
func (t *overviewTotals) move(before, after contribution) {
	if t == nil || before == after {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if before.plan != "" {
		t.byPlan[before.plan]--
		t.total--
		t.mrr -= before.price
	}
	if after.plan != "" {
		t.byPlan[after.plan]++
		t.total++
		t.mrr += after.price
	}
	t.addLocked(before.end, before.fig, -1)
	t.addLocked(after.end, after.fig, 1)
}

func (t *overviewTotals) addLocked(end int64, f periodFigures, sign int64) {
	if f == (periodFigures{}) || end <= t.expiredUpTo {
		return
	}
	b := t.buckets[end]
	if b == nil {
		b = &periodFigures{}
		t.buckets[end] = b
		heap.Push(&t.ends, end)
	}
	b.add(f, sign)
	t.sums.add(f, sign)
}

// read drops the buckets of periods ended by now and returns the totals.
func (t *overviewTotals) read(now time.Time, o *Overview) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ns := now.UnixNano()
	for len(t.ends) > 0 && t.ends[0] <= ns {
		end := heap.Pop(&t.ends).(int64)
		t.sums.add(*t.buckets[end], -1)
		delete(t.buckets, end)
	}
	t.expiredUpTo = max(t.expiredUpTo, ns)
	for name, n := range t.byPlan {
		o.Users[name] = n
	}
	o.Total, o.MRRCents = t.total, t.mrr
	o.OverageRevenueCents, o.AtLimit = t.sums.overageCents, t.sums.atLimit
	o.NearLimit, o.InOverage = t.sums.nearLimit, t.sums.inOverage
}

// endHeap is a min-heap of period ends.
type endHeap []int64

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *endHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
