package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/meterd/meterd/meter"
)

// heartbeatSQL registers the node, or refreshes its row, and keeps its
// leases fresh; the second statement runs in the same round trip.
const heartbeatSQL = `
INSERT INTO meterd_nodes AS n (node_id, address, started_at, heartbeat_at, export_backlog, leases_held, applied_revision)
VALUES ($1, $2, $3, now(), $4, $5, $6)
ON CONFLICT (node_id) DO UPDATE SET address = EXCLUDED.address, started_at = EXCLUDED.started_at,
    heartbeat_at = now(), export_backlog = EXCLUDED.export_backlog,
    leases_held = EXCLUDED.leases_held, applied_revision = EXCLUDED.applied_revision`

const renewSQL = `UPDATE meterd_quota_leases SET expires_at = now() + $2::bigint * interval '1 second' WHERE node_id = $1`

const liveNodesSQL = `SELECT count(*) FROM meterd_nodes WHERE heartbeat_at > now() - $1::bigint * interval '1 second'`

// runHeartbeat beats until ctx ends.
func (c *Cluster) runHeartbeat(ctx context.Context) {
	started := time.Now().UTC()
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		err := c.beat(ctx, started)
		c.noteResult(err)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("cluster heartbeat failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Cluster) beat(ctx context.Context, started time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var backlog int64
	if c.cfg.Backlog != nil {
		backlog = c.cfg.Backlog(ctx)
	}
	tx, err := c.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, heartbeatSQL, c.node, c.cfg.Address, started, backlog,
		c.leases.held(), c.applied.Load()); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	ttl := int64(c.leases.leaseTTL() / time.Second)
	if _, err := tx.Exec(ctx, renewSQL, c.node, ttl); err != nil {
		return fmt.Errorf("renew leases: %w", err)
	}
	var live int64
	if err := tx.QueryRow(ctx, liveNodesSQL, int64(DeadAfter/time.Second)).Scan(&live); err != nil {
		return fmt.Errorf("count nodes: %w", err)
	}
	c.liveNodes.Store(max(live, 1))
	return tx.Commit(ctx)
}

// Nodes lists the registry with each node's open leases, for
// GET /api/admin/cluster.
func (c *Cluster) Nodes(ctx context.Context) ([]meter.ClusterNode, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	rows, err := c.db.Query(ctx, `
SELECT n.node_id, n.address, n.started_at, n.heartbeat_at,
       n.heartbeat_at > now() - $1::bigint * interval '1 second',
       n.export_backlog, n.leases_held,
       COALESCE((SELECT sum(l.granted) FROM meterd_quota_leases l WHERE l.node_id = n.node_id), 0)::bigint
FROM meterd_nodes n ORDER BY n.node_id`, int64(DeadAfter/time.Second))
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	out := []meter.ClusterNode{}
	for rows.Next() {
		var n meter.ClusterNode
		if err := rows.Scan(&n.ID, &n.Address, &n.StartedAt, &n.LastHeartbeat, &n.Alive,
			&n.ExportBacklog, &n.LeasesHeld, &n.LeasedTotal); err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		n.StartedAt, n.LastHeartbeat = n.StartedAt.UTC(), n.LastHeartbeat.UTC()
		out = append(out, n)
	}
	return out, rows.Err()
}
