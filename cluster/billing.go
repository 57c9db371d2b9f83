package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/meterd/meterd/meter"
)

// CounterSource is this node's own exact counters (the ledger).
type CounterSource interface {
	Counters(ctx context.Context, account string) ([]meter.Counter, error)
}

// Billing is the cluster's billing store: the billing lease, intents and
// per-period state in Postgres (migrations/014_cluster_billing.sql), and
// counters that add the other nodes' published counts to this node's own.
// Whichever node holds the lease bills the whole cluster from it, and a
// node that takes over after a crash finds the same open intents.
//
// Every write that needs the lease reads the lease row FOR UPDATE in its
// own transaction and checks the holder there: a run whose lease was
// taken over writes nothing more, whatever the clocks say.
type Billing struct {
	db     *pgxpool.Pool
	node   string
	local  CounterSource
	planOf PlanOf
}

// PlanOf returns an account's plan (false if the account is unknown).
type PlanOf func(account string) (meter.Plan, bool)

var _ meter.BillingStore = (*Billing)(nil)

// NewBilling returns the billing store of node over db; local is the
// node's own counters, planOf the accounts' plans (for ClusterOverage).
func NewBilling(db *pgxpool.Pool, node string, local CounterSource, planOf PlanOf) *Billing {
	return &Billing{db: db, node: node, local: local, planOf: planOf}
}

// Billing returns the cluster's billing store for this node.
func (c *Cluster) Billing(local CounterSource, planOf PlanOf) *Billing {
	return NewBilling(c.db, c.node, local, planOf)
}

// peerCountersSQL sums the other nodes' published counters of an account,
// every period they published.
const peerCountersSQL = `
SELECT period_start, sum(calls)::bigint, sum(overage)::bigint, sum(overage_micros)::bigint, sum(denied)::bigint
FROM meterd_node_counts WHERE account_id = $1 AND node_id <> $2 GROUP BY period_start`

// Counters implements meter.BillingStore: this node's exact counters plus
// what the other nodes published (at most StalenessBound behind while
// they live; a dead node's last publication stays). The others' overage
// is already priced (overage_micros). Each node stamped overage against
// its own count, so the sum is completed by meter.ClusterOverage.
func (b *Billing) Counters(ctx context.Context, account string) ([]meter.Counter, error) {
	own, err := b.local.Counters(ctx, account)
	if err != nil {
		return nil, err
	}
	rows, err := b.db.Query(ctx, peerCountersSQL, account, b.node)
	if err != nil {
		return nil, fmt.Errorf("read peer counters: %w", err)
	}
	peers, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (meter.Counter, error) {
		c := meter.Counter{AccountID: account}
		err := r.Scan(&c.PeriodStart, &c.Calls, &c.Overage, &c.OverageMicros, &c.Denied)
		c.PeriodStart = c.PeriodStart.UTC()
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read peer counters: %w", err)
	}
	out := mergeCounters(own, peers)
	if b.planOf == nil {
		return out, nil
	}
	if plan, ok := b.planOf(account); ok {
		for i := range out {
			out[i] = meter.ClusterOverage(out[i], plan)
		}
	}
	return out, nil
}

// mergeCounters adds peers into own by period, oldest first.
func mergeCounters(own, peers []meter.Counter) []meter.Counter {
	out := slices.Clone(own)
	for _, p := range peers {
		i := slices.IndexFunc(out, func(c meter.Counter) bool { return c.PeriodStart.Equal(p.PeriodStart) })
		if i < 0 {
			out = append(out, p)
			continue
		}
		out[i].Add(p)
	}
	slices.SortFunc(out, func(a, b meter.Counter) int { return a.PeriodStart.Compare(b.PeriodStart) })
	return out
}

// acquireLeaseSQL takes the lease if it is free, expired or owner's.
const acquireLeaseSQL = `
UPDATE meterd_billing_lease SET holder = $1, expires_at = $3
WHERE id = 1 AND (holder = '' OR holder = $1 OR expires_at <= $2)
RETURNING holder, expires_at`

// AcquireBillingLease implements meter.BillingStore: one conditional
// UPDATE … RETURNING; no row back means someone else holds it.
func (b *Billing) AcquireBillingLease(ctx context.Context, owner string, now time.Time, ttl time.Duration) (meter.BillingLease, error) {
	if owner == "" || ttl <= 0 {
		return meter.BillingLease{}, meter.Invalid("lease", "needs an owner and a positive ttl")
	}
	var got meter.BillingLease
	err := b.db.QueryRow(ctx, acquireLeaseSQL, owner, now, now.Add(ttl)).Scan(&got.Owner, &got.Expires)
	if err == nil {
		got.Expires = got.Expires.UTC()
		return got, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return meter.BillingLease{}, fmt.Errorf("acquire billing lease: %w", err)
	}
	if err := b.db.QueryRow(ctx, `SELECT holder, expires_at FROM meterd_billing_lease WHERE id = 1`).Scan(&got.Owner, &got.Expires); err != nil {
		return meter.BillingLease{}, fmt.Errorf("acquire billing lease: %w", err)
	}
	got.Expires = got.Expires.UTC()
	return got, fmt.Errorf("%w: lease held by %s until %s", meter.ErrBillingBusy, got.Owner, got.Expires.Format(time.RFC3339))
}

// ReleaseBillingLease implements meter.BillingStore.
func (b *Billing) ReleaseBillingLease(ctx context.Context, owner string) error {
	if _, err := b.db.Exec(ctx, `UPDATE meterd_billing_lease SET holder = '' WHERE id = 1 AND holder = $1 AND $1 <> ''`, owner); err != nil {
		return fmt.Errorf("release billing lease: %w", err)
	}
	return nil
}

// BillingLease returns the lease as stored (Owner empty when free), for
// answering who is billing.
func (b *Billing) BillingLease(ctx context.Context) (meter.BillingLease, error) {
	var l meter.BillingLease
	err := b.db.QueryRow(ctx, `SELECT holder, expires_at FROM meterd_billing_lease WHERE id = 1`).Scan(&l.Owner, &l.Expires)
	l.Expires = l.Expires.UTC()
	return l, err
}

// holdsLease locks the lease row for the transaction and reports whether
// owner holds it. A takeover waits for the transaction, so a write made
// under it can never land after another run has taken the lease.
func holdsLease(ctx context.Context, tx pgx.Tx, owner string) (bool, error) {
	var holder string
	if err := tx.QueryRow(ctx, `SELECT holder FROM meterd_billing_lease WHERE id = 1 FOR UPDATE`).Scan(&holder); err != nil {
		return false, err
	}
	return owner != "" && holder == owner, nil
}

// getState reads a period's state, locking its row if it exists.
func getState(ctx context.Context, q pgx.Tx, account string, periodStart time.Time) (meter.BillingState, error) {
	st := meter.BillingState{AccountID: account, PeriodStart: periodStart.UTC()}
	var body string
	err := q.QueryRow(ctx, `SELECT body FROM meterd_billing_states WHERE account_id = $1 AND period_start = $2 FOR UPDATE`,
		account, periodStart).Scan(&body)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return st, nil
	case err != nil:
		return st, err
	}
	return st, json.Unmarshal([]byte(body), &st)
}

func putState(ctx context.Context, tx pgx.Tx, st meter.BillingState) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO meterd_billing_states (account_id, period_start, body) VALUES ($1, $2, $3)
ON CONFLICT (account_id, period_start) DO UPDATE SET body = EXCLUDED.body`, st.AccountID, st.PeriodStart, string(raw))
	return err
}

// putIntent writes an intent with its period state.
func putIntent(ctx context.Context, tx pgx.Tx, st meter.BillingState, in meter.BillingIntent) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO meterd_billing_intents (account_id, period_start, seq, open, body) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (account_id, period_start, seq) DO UPDATE SET open = EXCLUDED.open, body = EXCLUDED.body`,
		in.AccountID, in.PeriodStart, int64(in.Seq), in.Status.Open(), string(raw)); err != nil {
		return err
	}
	return putState(ctx, tx, st)
}

// getIntent reads one intent, locking its row; found is false if none.
func getIntent(ctx context.Context, tx pgx.Tx, account string, periodStart time.Time, seq uint32) (it meter.BillingIntent, found bool, err error) {
	var body string
	err = tx.QueryRow(ctx, `SELECT body FROM meterd_billing_intents WHERE account_id = $1 AND period_start = $2 AND seq = $3 FOR UPDATE`,
		account, periodStart, int64(seq)).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return it, false, nil
	}
	if err != nil {
		return it, false, err
	}
	return it, true, json.Unmarshal([]byte(body), &it)
}

// BillingState implements meter.BillingStore.
func (b *Billing) BillingState(ctx context.Context, account string, periodStart time.Time) (meter.BillingState, error) {
	st := meter.BillingState{AccountID: account, PeriodStart: periodStart.UTC()}
	var body string
	err := b.db.QueryRow(ctx, `SELECT body FROM meterd_billing_states WHERE account_id = $1 AND period_start = $2`,
		account, periodStart).Scan(&body)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return st, nil
	case err != nil:
		return st, fmt.Errorf("billing state: %w", err)
	}
	return st, json.Unmarshal([]byte(body), &st)
}
