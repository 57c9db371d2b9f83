package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/meter"
)

// DefaultPublishInterval is how often a node publishes its own counts and
// reads the others'. A read on any node is then at most StalenessBound
// behind the cluster: a call counted elsewhere is published within one
// interval and read here within the next, plus the round trips.
const DefaultPublishInterval = 500 * time.Millisecond

// StalenessBound is the stated bound on how far a cluster-wide read lags
// the other nodes while Postgres answers: a count is published within one
// interval and read within the next (1 s at the default), plus two round
// trips, well inside this. Tests assert it. While Postgres is unreachable
// the others' counts stay as last read, and /readyz says so.
const StalenessBound = 2 * time.Second

// peerKey names one account's period.
type peerKey struct {
	account string
	period  int64
}

// peerCounts is the others' published counts, replaced whole on each read.
type peerCounts struct {
	mu sync.RWMutex
	m  map[peerKey]meter.Counter
}

var _ meter.Peers = (*Cluster)(nil)

// Others is the other nodes' published counts of an account's period.
func (c *Cluster) Others(accountID string, periodStart time.Time) meter.Counter {
	c.peers.mu.RLock()
	defer c.peers.mu.RUnlock()
	return c.peers.m[peerKey{accountID, periodStart.Unix()}]
}

// publishSQL upserts one of this node's counters. overage_micros is the
// meter's live figure, already priced (calls of the first ledger layout at
// the account's plan), so the billing node bills it as it stands.
const publishSQL = `
INSERT INTO meterd_node_counts (node_id, account_id, period_start, calls, overage, denied, overage_micros, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now())
ON CONFLICT (node_id, account_id, period_start) DO UPDATE
    SET calls = EXCLUDED.calls, overage = EXCLUDED.overage, denied = EXCLUDED.denied,
        overage_micros = EXCLUDED.overage_micros, updated_at = now()`

// othersSQL sums every other node's counters.
const othersSQL = `
SELECT account_id, period_start, sum(calls)::bigint, sum(overage)::bigint, sum(denied)::bigint, sum(overage_micros)::bigint
FROM meterd_node_counts WHERE node_id <> $1 GROUP BY account_id, period_start`

// runCounts publishes this node's counts and reads the others' until ctx
// ends.
func (c *Cluster) runCounts(ctx context.Context, local Applier) {
	st := &countState{published: map[peerKey]meter.Counter{}, period: map[string]int64{},
		closing: map[peerKey]closingPeriod{}}
	t := time.NewTicker(c.cfg.PublishInterval)
	defer t.Stop()
	for {
		if err := c.exchangeCounts(ctx, local, st); err != nil && ctx.Err() == nil {
			c.noteResult(err)
			c.log.Debug("cluster: count exchange failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// exchangeCounts publishes the counters that changed since the last
// successful publication, with the day rows of their accounts
// (queueDaily), and reads the others', in one round trip. What a failed
// round did not publish differs from published, so the next round sends
// it again.
func (c *Cluster) exchangeCounts(ctx context.Context, local Applier, st *countState) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var b pgx.Batch
	changed := map[peerKey]meter.Counter{}
	published := st.published
	now := time.Now()
	for _, q := range local.Quotas() {
		k := peerKey{q.Account.ID, q.Period.Start.Unix()}
		if prev, ok := st.period[k.account]; ok && prev != k.period {
			st.closing[peerKey{k.account, prev}] = closingPeriod{until: now.Add(closingRepublish), plan: q.Plan}
		}
		st.period[k.account] = k.period
		cur := meter.Counter{Calls: q.Calls, Overage: q.Overage, Denied: q.Denied, OverageMicros: q.OverageMicros}
		if published[k] == cur {
			continue
		}
		changed[k] = cur
		b.Queue(publishSQL, c.node, q.Account.ID, q.Period.Start, cur.Calls, cur.Overage, cur.Denied, cur.OverageMicros)
	}
	if err := c.queueClosing(ctx, &b, st, now); err != nil {
		return err
	}
	if err := c.queueDaily(ctx, &b, changed, now); err != nil {
		return err
	}
	others := map[peerKey]meter.Counter{}
	b.Queue(othersSQL, c.node).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var start time.Time
			var n meter.Counter
			if err := rows.Scan(&id, &start, &n.Calls, &n.Overage, &n.Denied, &n.OverageMicros); err != nil {
				return err
			}
			others[peerKey{id, start.Unix()}] = n
		}
		return rows.Err()
	})
	if err := c.db.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("exchange counts: %w", err)
	}
	for k, v := range changed {
		published[k] = v
	}
	for k, cp := range st.closing {
		if now.After(cp.until) {
			delete(st.closing, k)
		}
	}
	c.peers.mu.Lock()
	c.peers.m = others
	c.peers.mu.Unlock()
	return nil
}

// closingRepublish is how long after a node sees an account's period end
// it keeps publishing that period's counter from its ledger: calls
// committed between its last publication and the rollover reach the
// billing node, which bills closed periods only after the grace (1 h).
const closingRepublish = 10 * time.Second

// countState is what the count exchange remembers between rounds.
type countState struct {
	// published is what the last successful round published.
	published map[peerKey]meter.Counter
	// period is each account's current period start as last seen.
	period map[string]int64
	// closing are periods that just ended here, republished from the
	// ledger until their deadline.
	closing map[peerKey]closingPeriod
}

type closingPeriod struct {
	until time.Time
	plan  meter.Plan
}

// PeriodCounter is the ledger's counter of one period; a Local that has
// it gets its closed periods republished (see closingRepublish).
type PeriodCounter interface {
	Counter(ctx context.Context, account string, periodStart time.Time) (meter.Counter, error)
}

// queueClosing republishes the counters of periods that just closed here.
func (c *Cluster) queueClosing(ctx context.Context, b *pgx.Batch, st *countState, now time.Time) error {
	src, ok := c.cfg.Local.(PeriodCounter)
	if !ok {
		return nil
	}
	for k, cp := range st.closing {
		n, err := src.Counter(ctx, k.account, time.Unix(k.period, 0).UTC())
		if err != nil {
			return err
		}
		b.Queue(publishSQL, c.node, k.account, time.Unix(k.period, 0).UTC(), n.Calls, n.Overage, n.Denied,
			n.PricedOverageMicros(cp.plan))
	}
	return nil
}
