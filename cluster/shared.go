package cluster

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/meter"
)

// nextRevisionSQL takes the next revision. The row lock it holds until
// commit orders all admin writes, so revisions become visible in order.
const nextRevisionSQL = `UPDATE meterd_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision`

// CreateAccount stores a new account in the shared state; see
// meter.SharedState.
func (c *Cluster) CreateAccount(ctx context.Context, a meter.Account) error {
	return c.write(ctx, func(tx pgx.Tx, rev int64) error {
		body, err := json.Marshal(a)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO meterd_accounts (account_id, body, revision) VALUES ($1, $2, $3)
ON CONFLICT (account_id) DO NOTHING`, a.ID, string(body), rev)
		if err == nil && tag.RowsAffected() == 0 {
			return meter.ErrAccountExists
		}
		return err
	})
}

// PutAccount replaces an account in the shared state.
func (c *Cluster) PutAccount(ctx context.Context, a meter.Account) error {
	return c.write(ctx, func(tx pgx.Tx, rev int64) error {
		body, err := json.Marshal(a)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO meterd_accounts (account_id, body, revision) VALUES ($1, $2, $3)
ON CONFLICT (account_id) DO UPDATE SET body = EXCLUDED.body, revision = EXCLUDED.revision`, a.ID, string(body), rev)
		return err
	})
}

// PutKey creates or replaces a key (hash only) in the shared state.
func (c *Cluster) PutKey(ctx context.Context, k meter.APIKey) error {
	return c.write(ctx, func(tx pgx.Tx, rev int64) error {
		body, err := json.Marshal(k)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO meterd_keys (key_id, account_id, key_hash, body, revision) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (key_id) DO UPDATE SET body = EXCLUDED.body, key_hash = EXCLUDED.key_hash, revision = EXCLUDED.revision`,
			k.ID, k.AccountID, k.Hash.String(), string(body), rev)
		return err
	})
}

// write runs one admin change under the next revision.
func (c *Cluster) write(ctx context.Context, fn func(tx pgx.Tx, rev int64) error) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		var rev int64
		if err := tx.QueryRow(ctx, nextRevisionSQL).Scan(&rev); err != nil {
			return err
		}
		return fn(tx, rev)
	})
	if errors.Is(err, meter.ErrAccountExists) {
		return err
	}
	c.noteResult(err)
	if err != nil {
		return fmt.Errorf("%w: %v", meter.ErrSharedUnavailable, err)
	}
	return nil
}

// changesSQL reads the changes after a revision, oldest first.
const changesSQL = `
SELECT revision, 'a', body, '' FROM meterd_accounts WHERE revision > $1
UNION ALL
SELECT revision, 'k', body, key_hash FROM meterd_keys WHERE revision > $1
ORDER BY 1 LIMIT 500`

// runSync applies other nodes' admin changes every SyncInterval. Polling
// is the guarantee; nothing depends on notifications.
func (c *Cluster) runSync(ctx context.Context, applier Applier) {
	if cur, err := c.cfg.Local.Cursor(ctx, RevisionCursor); err == nil {
		c.applied.Store(int64(cur))
	}
	t := time.NewTicker(c.cfg.SyncInterval)
	defer t.Stop()
	adopted := false
	for {
		if !adopted {
			if err := c.adoptLocal(ctx, applier); err != nil {
				if ctx.Err() == nil {
					c.log.Warn("cluster: offering this node's accounts to the cluster failed; will retry", "error", err)
				}
			} else {
				adopted = true
			}
		}
		for {
			n, err := c.syncOnce(ctx, applier)
			if err != nil {
				if ctx.Err() == nil {
					c.log.Warn("cluster: applying shared changes failed; serving the local copy", "error", err)
				}
				break
			}
			if n < 500 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// syncOnce applies one page of changes in revision order and moves the
// ledger's revision cursor past them.
func (c *Cluster) syncOnce(ctx context.Context, applier Applier) (int, error) {
	qctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	rows, err := c.db.Query(qctx, changesSQL, c.applied.Load())
	if err != nil {
		c.noteResult(err)
		return 0, fmt.Errorf("read changes: %w", err)
	}
	type change struct {
		rev        int64
		kind, body string
		hash       string
	}
	var changes []change
	for rows.Next() {
		var ch change
		if err := rows.Scan(&ch.rev, &ch.kind, &ch.body, &ch.hash); err != nil {
			rows.Close()
			return 0, err
		}
		changes = append(changes, ch)
	}
	if err := rows.Err(); err != nil {
		c.noteResult(err)
		return 0, err
	}
	c.noteResult(nil)
	c.reachMu.Lock()
	c.everSynced = true
	c.reachMu.Unlock()
	for _, ch := range changes {
		if err := c.apply(ctx, applier, ch.kind, ch.body, ch.hash); err != nil {
			return 0, fmt.Errorf("revision %d: %w", ch.rev, err)
		}
		c.applied.Store(ch.rev)
		c.syncs.Inc()
	}
	if len(changes) > 0 {
		if err := c.cfg.Local.SetCursor(ctx, RevisionCursor, uint64(c.applied.Load())); err != nil {
			return 0, err
		}
	}
	return len(changes), nil
}

func (c *Cluster) apply(ctx context.Context, applier Applier, kind, body, hash string) error {
	if kind == "a" {
		var a meter.Account
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			return fmt.Errorf("decode account: %w", err)
		}
		return applier.ApplyAccount(ctx, a)
	}
	var k meter.APIKey
	if err := json.Unmarshal([]byte(body), &k); err != nil {
		return fmt.Errorf("decode key: %w", err)
	}
	h, err := hex.DecodeString(hash)
	if err != nil || len(h) != len(k.Hash) {
		return fmt.Errorf("key %s: bad hash", k.ID)
	}
	copy(k.Hash[:], h)
	return applier.ApplyKey(ctx, k)
}
