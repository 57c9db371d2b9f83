package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/meter"
)

// AdoptedCursor marks, in the ledger, that this node's own accounts and
// keys have been offered to the cluster (value 1).
const AdoptedCursor = "cluster_adopted"

// adoptLocal offers the cluster, once per ledger, the accounts and keys
// this node held before it first joined (a single node turned into the
// first member, or a node with local accounts joining). Each is inserted
// only where its id is new to the cluster, under a revision like any
// admin write, so nothing already shared is overwritten: a key revoked in
// the cluster stays revoked.
func (c *Cluster) adoptLocal(ctx context.Context, local Applier) error {
	if done, err := c.cfg.Local.Cursor(ctx, AdoptedCursor); err != nil || done == 1 {
		return err
	}
	var accounts, keys int
	for _, q := range local.Quotas() {
		switch err := c.CreateAccount(ctx, q.Account); {
		case err == nil:
			accounts++
		case !errors.Is(err, meter.ErrAccountExists):
			return fmt.Errorf("adopt account %s: %w", q.Account.ID, err)
		}
		for _, k := range local.KeysOf(q.Account.ID) {
			added, err := c.adoptKey(ctx, k)
			if err != nil {
				return fmt.Errorf("adopt key %s: %w", k.ID, err)
			}
			if added {
				keys++
			}
		}
	}
	if accounts+keys > 0 {
		c.log.Info("cluster: offered this node's own accounts and keys to the cluster", "accounts", accounts, "keys", keys)
	}
	return c.cfg.Local.SetCursor(ctx, AdoptedCursor, 1)
}

// adoptKey inserts k unless the cluster already has its id.
func (c *Cluster) adoptKey(ctx context.Context, k meter.APIKey) (bool, error) {
	var added bool
	err := c.write(ctx, func(tx pgx.Tx, rev int64) error {
		body, err := json.Marshal(k)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO meterd_keys (key_id, account_id, key_hash, body, revision) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (key_id) DO NOTHING`, k.ID, k.AccountID, k.Hash.String(), string(body), rev)
		added = err == nil && tag.RowsAffected() == 1
		return err
	})
	return added, err
}
