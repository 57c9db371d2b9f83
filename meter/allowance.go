package meter

import (
	"context"
	"errors"
	"time"
)

// ErrQuotaUnavailable: a hard-limited call cannot be decided because the
// cluster's shared quota is unreachable and this node holds no allowance
// for the account (cluster mode with --cluster-fail=closed). Nothing was
// counted; the caller should retry shortly.
var ErrQuotaUnavailable = errors.New("quota unavailable: the shared quota cannot be reached and no allowance is held")

// Allowance is the port through which a meter in cluster mode gets the
// right to admit calls of hard-limited plans: the cluster package leases
// allowance from the shared database in chunks and hands it out one call
// at a time. A meter without an Allowance decides hard limits from its own
// counters alone, as a single node does.
type Allowance interface {
	// Take asks for one admission for the account's period under limit.
	// true: admit the call. false: the cluster has handed out the whole
	// limit; deny it. An error (ErrQuotaUnavailable) means neither can be
	// known; the call must not be counted.
	Take(ctx context.Context, accountID string, period Period, limit int64) (bool, error)
	// Give hands back n admissions that were taken but not used (the
	// decision was undone), so the node can admit them again.
	Give(accountID string, period Period, n int64)
}

// MaxLeaseChunk caps one lease: the most a node can hold unused for one
// account, and so the most a dead node keeps from the others until it
// returns or is released.
const MaxLeaseChunk = 1000

// LeaseChunk is how much allowance a node asks for when its own runs out:
// a share of what remains of the limit (granted is the cluster's total
// handed out, as last seen), split so that each of nodes can take several
// chunks before the tail, capped at MaxLeaseChunk, and 1 once little
// remains, so that at the tail no node sits on allowance another could
// use. 0 means nothing remains. The database caps the grant at what
// really remains, so a stale granted can only make a chunk too large, and
// never lets the cluster pass the limit.
func LeaseChunk(limit, granted int64, nodes int) int64 {
	remaining := limit - granted
	if remaining <= 0 {
		return 0
	}
	nodes = max(nodes, 1)
	return min(max(remaining/int64(4*nodes), 1), MaxLeaseChunk)
}

// grant is the outcome of asking the Allowance for one call.
type grant struct {
	asked  bool // the plan is hard-limited and the meter has an Allowance
	ok     bool // an admission was taken
	period Period
}

// takeAllowance asks the Allowance for one admission when the account's
// plan is hard-limited, before the decision takes the account's lock: a
// lease round trip must not block the account's reads.
func (m *Meter) takeAllowance(ctx context.Context, st *accountState, now time.Time) (grant, error) {
	if m.allowance == nil {
		return grant{}, nil
	}
	st.mu.Lock()
	st.rollLocked(now)
	plan, period, id := st.plan, st.period, st.id
	st.mu.Unlock()
	if !plan.Hard || plan.Unlimited() {
		return grant{}, nil
	}
	ok, err := m.allowance.Take(ctx, id, period, plan.Limit)
	if err != nil {
		return grant{}, err
	}
	return grant{asked: true, ok: ok, period: period}, nil
}

// decideGrantedLocked is decideLocked for a call the Allowance was asked
// about: a refusal denies it whatever the local counters say.
func (s *accountState) decideGrantedLocked(g grant) (allowed, overage bool) {
	if g.asked && !g.ok {
		before := s.contributionLocked()
		s.denied++
		s.totals.move(before, s.contributionLocked())
		return false, false
	}
	return s.decideLocked()
}

// settleGrant gives back an admission that was taken but not spent: the
// local counters denied the call, or the period moved on meanwhile.
func (m *Meter) settleGrant(g grant, accountID string, allowed bool, periodStart time.Time) {
	if g.ok && (!allowed || !periodStart.Equal(g.period.Start)) {
		m.allowance.Give(accountID, g.period, 1)
	}
}

// giveBackUndone returns the admission of an allowed hard-limited call
// whose record failed and was undone.
func (m *Meter) giveBackUndone(st *accountState, ev *Event) {
	if m.allowance == nil || ev.Decision != Allowed {
		return
	}
	st.mu.Lock()
	plan, anchor := st.plan, st.acct.Anchor()
	st.mu.Unlock()
	if plan.Hard && !plan.Unlimited() {
		m.allowance.Give(ev.AccountID, PeriodAt(anchor, ev.PeriodStart), 1)
	}
}

// Peers reports the counts the other nodes of a cluster have published,
// so reads answer for the whole cluster: this node's exact counts plus
// theirs, a bounded staleness behind (the cluster package states it).
type Peers interface {
	// Others is the sum of the other nodes' counts of the account's period
	// (zero if none or unknown).
	Others(accountID string, periodStart time.Time) Counter
}

// withPeersResult adds the other nodes' calls to a decided call's answer,
// so its quota headers speak for the cluster.
func (m *Meter) withPeersResult(res *Result) {
	if m.peers == nil || res.Unlimited {
		return
	}
	o := m.peers.Others(res.AccountID, res.Period.Start)
	if o.Calls == 0 {
		return
	}
	res.Calls += o.Calls
	if res.Remaining > 0 {
		res.Remaining = max(res.Remaining-o.Calls, 0)
	}
}

// withPeersQuota adds the other nodes' counts to an account's quota.
func (m *Meter) withPeersQuota(q *Quota) {
	if m.peers == nil {
		return
	}
	o := m.peers.Others(q.Account.ID, q.Period.Start)
	q.Calls += o.Calls
	q.Overage += o.Overage
	q.OverageMicros += o.OverageMicros
	q.Denied += o.Denied
	c := ClusterOverage(q.Counter(), q.Plan)
	q.OverageMicros += (c.Overage - q.Overage) * OveragePriceMicros(q.Plan)
	q.Overage = c.Overage
}

// ClusterOverage is the overage rule for a counter summed over a
// cluster's nodes. Each node stamps a soft-limited call as overage
// against its own count (it decides alone), so the sum of the stamps can
// fall short of the calls past the limit, never exceed it: Σ max(nᵢ −
// limit, 0) ≤ max(Σ nᵢ − limit, 0). The calls missing from the stamps are
// added as overage priced at plan (UnpricedOverage, see
// PricedOverageMicros), so the cluster bills exactly the calls past the
// limit. plan should be the one the period ran on (the account's current
// plan: a mid-period plan change prices the added calls at the new rate).
func ClusterOverage(c Counter, plan Plan) Counter {
	if more := OverageCalls(plan, c.Calls) - c.Overage; more > 0 {
		c.Overage += more
		c.UnpricedOverage += more
	}
	return c
}

// clusterOverview recomputes, in cluster mode, the overview's figures
// that depend on an account's counts (overage revenue, at, near and past
// the limit) from the cluster-wide counts: O(accounts) rather than the
// single node's running totals, each account's count at most the
// cluster's staleness bound behind. Plan counts and MRR need nothing:
// every node holds every account.
func (m *Meter) clusterOverview(o *Overview) {
	if m.peers == nil {
		return
	}
	o.OverageRevenueCents, o.AtLimit, o.NearLimit, o.InOverage = 0, 0, 0, 0
	for _, q := range m.Quotas() {
		m.withPeersQuota(&q)
		o.OverageRevenueCents += MicrosToCents(q.OverageMicros)
		if q.Plan.Unlimited() {
			continue
		}
		if q.Plan.Hard && q.Denied > 0 {
			o.AtLimit++
		}
		if q.Calls*100 >= q.Plan.Limit*NearLimitPercent {
			o.NearLimit++
		}
		if !q.Plan.Hard && q.Calls > q.Plan.Limit {
			o.InOverage++
		}
	}
}
