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
	published := map[peerKey]meter.Counter{}
	dailyDue := map[string]bool{} // accounts whose day rows are not published yet
	t := time.NewTicker(c.cfg.PublishInterval)
	defer t.Stop()
	for {
		err := c.exchangeCounts(ctx, local, published, dailyDue)
		if err == nil {
			if err = c.publishDaily(ctx, dailyDue, time.Now()); err == nil {
				clear(dailyDue)
			}
		}
		if err != nil && ctx.Err() == nil {
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
// successful publication and reads the others', in one round trip; the
// accounts that changed become due for their day rows (publishDaily).
func (c *Cluster) exchangeCounts(ctx context.Context, local Applier, published map[peerKey]meter.Counter, dailyDue map[string]bool) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var b pgx.Batch
	changed := map[peerKey]meter.Counter{}
	for _, q := range local.Quotas() {
		k := peerKey{q.Account.ID, q.Period.Start.Unix()}
		cur := meter.Counter{Calls: q.Calls, Overage: q.Overage, Denied: q.Denied, OverageMicros: q.OverageMicros}
		if published[k] == cur {
			continue
		}
		changed[k] = cur
		b.Queue(publishSQL, c.node, q.Account.ID, q.Period.Start, cur.Calls, cur.Overage, cur.Denied, cur.OverageMicros)
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
		dailyDue[k.account] = true
	}
	c.peers.mu.Lock()
	c.peers.m = others
	c.peers.mu.Unlock()
	return nil
}
