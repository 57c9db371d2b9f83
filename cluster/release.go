package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNodeAlive: release was asked for a node whose heartbeat is recent.
var ErrNodeAlive = errors.New("node is alive (recent heartbeat); stop it first or force")

// Settlement is what releasing one lease of a dead node did.
type Settlement struct {
	AccountID   string    `json:"account_id"`
	PeriodStart time.Time `json:"period_start"`
	Leased      int64     `json:"leased"`
	// Exported is the node's allowed calls for the account's period found
	// in eco_api_usage; they stay counted, the rest returns to the pool.
	Exported int64 `json:"exported"`
	Returned int64 `json:"returned"`
}

// exportedSQL counts node $3's allowed calls of an account's period in the
// export table: event ids are "<node>-<sequence>".
const exportedSQL = `
SELECT count(*) FROM eco_api_usage
WHERE account_id = $1 AND period_start = $2 AND decision = 'allowed'
  AND left(event_id, length($3) + 1) = $3 || '-'
  AND substr(event_id, length($3) + 2) ~ '^[0-9]+$'`

// releaseSQL drops node $1's lease of account $2's period $3 if it still
// stands at $4, and gives back all of it but the $5 calls the node spent.
const releaseSQL = `
WITH ls AS (
    DELETE FROM meterd_quota_leases
    WHERE node_id = $1 AND account_id = $2 AND period_start = $3 AND granted = $4
    RETURNING 1
)
UPDATE meterd_quota_grants SET granted = granted - ($4::bigint - $5::bigint), updated_at = now()
WHERE account_id = $2 AND period_start = $3 AND EXISTS (SELECT 1 FROM ls)`

// Release settles a dead node's leases against what it exported: each
// lease keeps the node's allowed calls found in eco_api_usage as spent and
// returns the rest, then the node leaves the registry. It trusts the
// export: calls the node acknowledged but never exported would be
// admitted a second time elsewhere, so export the node's disk first
// (meterd export --once --data-dir) whenever it still exists. It refuses a
// node with a recent heartbeat unless force is set.
func Release(ctx context.Context, conn *pgx.Conn, node string, force bool) ([]Settlement, error) {
	if !force {
		var alive bool
		err := conn.QueryRow(ctx, `SELECT heartbeat_at > now() - $2::bigint * interval '1 second'
FROM meterd_nodes WHERE node_id = $1`, node, int64(DeadAfter/time.Second)).Scan(&alive)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("release %s: %w", node, err)
		}
		if alive {
			return nil, fmt.Errorf("release %s: %w", node, ErrNodeAlive)
		}
	}
	rows, err := conn.Query(ctx, `SELECT account_id, period_start, granted FROM meterd_quota_leases
WHERE node_id = $1 ORDER BY account_id, period_start`, node)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", node, err)
	}
	var out []Settlement
	for rows.Next() {
		var s Settlement
		if err := rows.Scan(&s.AccountID, &s.PeriodStart, &s.Leased); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("release %s: %w", node, err)
	}
	for i := range out {
		s := &out[i]
		if err := conn.QueryRow(ctx, exportedSQL, s.AccountID, s.PeriodStart, node).Scan(&s.Exported); err != nil {
			return out[:i], fmt.Errorf("release %s: count exported calls: %w", node, err)
		}
		spent := min(s.Exported, s.Leased)
		tag, err := conn.Exec(ctx, releaseSQL, node, s.AccountID, s.PeriodStart, s.Leased, spent)
		if err != nil {
			return out[:i], fmt.Errorf("release %s: %w", node, err)
		}
		if tag.RowsAffected() == 1 {
			s.Returned = s.Leased - spent
		}
		s.PeriodStart = s.PeriodStart.UTC()
	}
	if _, err := conn.Exec(ctx, `DELETE FROM meterd_nodes WHERE node_id = $1`, node); err != nil {
		return out, fmt.Errorf("release %s: %w", node, err)
	}
	return out, nil
}
