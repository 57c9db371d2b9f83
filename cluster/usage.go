package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/meter"
)

// UsageSource is this node's own daily usage (the ledger).
type UsageSource interface {
	DailyUsage(ctx context.Context, account string, from, to time.Time) ([]meter.DailyUsage, error)
	EndpointUsage(ctx context.Context, account string, from, to time.Time) ([]meter.EndpointUsage, error)
}

// publishDailySQL upserts one of this node's day rows (endpoint and
// method ” for the account's whole day).
const publishDailySQL = `
INSERT INTO meterd_node_daily (node_id, account_id, usage_date, endpoint, method, api_calls, overage_calls,
    denied_calls, errors, client_errors, latency_sum_us, latency_count)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (node_id, account_id, usage_date, endpoint, method) DO UPDATE
    SET api_calls = EXCLUDED.api_calls, overage_calls = EXCLUDED.overage_calls, denied_calls = EXCLUDED.denied_calls,
        errors = EXCLUDED.errors, client_errors = EXCLUDED.client_errors,
        latency_sum_us = EXCLUDED.latency_sum_us, latency_count = EXCLUDED.latency_count`

// queueDaily queues the day rows of the accounts whose counts changed:
// today's, and yesterday's too within two intervals of midnight, so calls
// just before it are not left behind. It reads the ledger: two short
// views per changed account and day.
func (c *Cluster) queueDaily(ctx context.Context, b *pgx.Batch, changed map[peerKey]meter.Counter, now time.Time) error {
	src := c.cfg.Usage
	if src == nil {
		return nil
	}
	done := map[string]bool{}
	for k := range changed {
		if done[k.account] {
			continue
		}
		done[k.account] = true
		for day := meter.DayOf(now.Add(-2 * c.cfg.PublishInterval)); !day.After(meter.DayOf(now)); day = day.AddDate(0, 0, 1) {
			if err := c.queueDay(ctx, b, src, k.account, day); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Cluster) queueDay(ctx context.Context, b *pgx.Batch, src UsageSource, acct string, day time.Time) error {
	days, err := src.DailyUsage(ctx, acct, day, day)
	if err != nil {
		return err
	}
	for _, d := range days {
		queueUsage(b, c.node, acct, day, "", "", d.Usage)
	}
	eps, err := src.EndpointUsage(ctx, acct, day, day)
	if err != nil {
		return err
	}
	for _, e := range eps {
		queueUsage(b, c.node, acct, day, e.Endpoint, e.Method, e.Usage)
	}
	return nil
}

func queueUsage(b *pgx.Batch, node, acct string, day time.Time, endpoint, method string, u meter.Usage) {
	b.Queue(publishDailySQL, node, acct, day, endpoint, method, u.Calls, u.Overage, u.Denied, u.Errors,
		u.ClientErrors, u.LatencySumMicros, u.LatencyCount)
}

// Usage answers usage reads for the whole cluster: this node's exact
// ledger rows plus the other nodes' published ones, read from Postgres at
// request time (at most StalenessBound behind while the others live).
type Usage struct {
	c     *Cluster
	local UsageSource
}

// Usage returns the cluster-wide usage reader over this node's own.
func (c *Cluster) Usage(local UsageSource) *Usage { return &Usage{c: c, local: local} }

const usageCols = `sum(api_calls)::bigint, sum(overage_calls)::bigint, sum(denied_calls)::bigint, sum(errors)::bigint,
    sum(client_errors)::bigint, sum(latency_sum_us)::bigint, sum(latency_count)::bigint`

// othersDailySQL sums the other nodes' account days (” account: all).
const othersDailySQL = `SELECT usage_date, ` + usageCols + ` FROM meterd_node_daily
WHERE node_id <> $1 AND ($2 = '' OR account_id = $2) AND usage_date BETWEEN $3 AND $4 AND endpoint = '' AND method = ''
GROUP BY usage_date`

// othersEndpointSQL sums the other nodes' endpoint rows over the days.
const othersEndpointSQL = `SELECT endpoint, method, ` + usageCols + ` FROM meterd_node_daily
WHERE node_id <> $1 AND account_id = $2 AND usage_date BETWEEN $3 AND $4 AND (endpoint <> '' OR method <> '')
GROUP BY endpoint, method`

func scanUsage(r pgx.Row, head []any, u *meter.Usage) error {
	return r.Scan(append(head, &u.Calls, &u.Overage, &u.Denied, &u.Errors, &u.ClientErrors, &u.LatencySumMicros, &u.LatencyCount)...)
}

// DailyUsage is the cluster's usage of account (” for every account) per
// UTC day, oldest first, empty days included (as the ledger answers).
func (u *Usage) DailyUsage(ctx context.Context, account string, from, to time.Time) ([]meter.DailyUsage, error) {
	out, err := u.local.DailyUsage(ctx, account, from, to)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	rows, err := u.c.db.Query(ctx, othersDailySQL, u.c.node, account, from, to)
	if err != nil {
		return nil, unreachable("read cluster usage", err)
	}
	defer rows.Close()
	for rows.Next() {
		var day time.Time
		var us meter.Usage
		if err := scanUsage(rows, []any{&day}, &us); err != nil {
			return nil, fmt.Errorf("read cluster usage: %w", err)
		}
		for i := range out {
			if out[i].Day.Equal(meter.DayOf(day)) {
				out[i].Usage.Add(us)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, unreachable("read cluster usage", err)
	}
	return out, nil
}

// unreachable marks a failed read of the others' rows as the shared state
// being unavailable (503 cluster_unavailable): answering the node's own
// share alone would look like a drop in usage.
func unreachable(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, meter.ErrSharedUnavailable, err)
}

// EndpointUsage is the cluster's usage of account per endpoint and method
// over the days from `from` to `to`.
func (u *Usage) EndpointUsage(ctx context.Context, account string, from, to time.Time) ([]meter.EndpointUsage, error) {
	out, err := u.local.EndpointUsage(ctx, account, from, to)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	rows, err := u.c.db.Query(ctx, othersEndpointSQL, u.c.node, account, from, to)
	if err != nil {
		return nil, unreachable("read cluster endpoint usage", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e meter.EndpointUsage
		if err := scanUsage(rows, []any{&e.Endpoint, &e.Method}, &e.Usage); err != nil {
			return nil, fmt.Errorf("read cluster endpoint usage: %w", err)
		}
		out = addEndpoint(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, unreachable("read cluster endpoint usage", err)
	}
	return out, nil
}

func addEndpoint(out []meter.EndpointUsage, e meter.EndpointUsage) []meter.EndpointUsage {
	for i := range out {
		if out[i].Endpoint == e.Endpoint && out[i].Method == e.Method {
			out[i].Usage.Add(e.Usage)
			return out
		}
	}
	return append(out, e)
}
