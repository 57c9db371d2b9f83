package meter

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrSharedUnavailable: in cluster mode, an admin write could not reach the
// shared state (Postgres), so it was not made anywhere; retry shortly.
var ErrSharedUnavailable = errors.New("shared state unavailable")

// SharedState is the port through which a meter in cluster mode writes
// accounts and keys to the cluster's shared store first, before its own
// ledger; the cluster package implements it on Postgres and applies every
// node's writes to every ledger in revision order (ApplyAccount, ApplyKey).
type SharedState interface {
	// CreateAccount stores a new account; ErrAccountExists if another node
	// created the id first.
	CreateAccount(ctx context.Context, a Account) error
	// PutAccount replaces an existing account.
	PutAccount(ctx context.Context, a Account) error
	// PutKey creates or replaces a key (a revocation is a replacement).
	PutKey(ctx context.Context, k APIKey) error
}

// ClusterNode is one node of a cluster as the shared registry sees it.
type ClusterNode struct {
	ID            string    `json:"id"`
	Address       string    `json:"address"`
	StartedAt     time.Time `json:"started_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	Alive         bool      `json:"alive"`
	ExportBacklog int64     `json:"export_backlog"`
	// LeasesHeld is allowance the node holds and has not spent yet;
	// LeasedTotal all allowance attributed to it in open leases.
	LeasesHeld  int64 `json:"leases_held"`
	LeasedTotal int64 `json:"leased_total"`
}

// shareAccount writes a to the shared state first, when there is one.
func (m *Meter) shareAccount(ctx context.Context, a Account, create bool) error {
	if m.shared == nil {
		return nil
	}
	if create {
		return m.shared.CreateAccount(ctx, a)
	}
	return m.shared.PutAccount(ctx, a)
}

// shareKey writes k to the shared state first, when there is one.
func (m *Meter) shareKey(ctx context.Context, k APIKey) error {
	if m.shared == nil {
		return nil
	}
	return m.shared.PutKey(ctx, k)
}

// ApplyAccount makes a replicated account (created or changed on any node
// of the cluster) this node's: stored in the ledger, then live. Applying
// the same record twice changes nothing.
func (m *Meter) ApplyAccount(ctx context.Context, a Account) error {
	plan, ok := m.plans.Get(a.Plan)
	if !ok {
		return fmt.Errorf("apply account %s: %w %q (plans files differ between nodes?)", a.ID, ErrUnknownPlan, a.Plan)
	}
	m.adminMu.Lock()
	defer m.adminMu.Unlock()
	if err := m.store.PutAccount(ctx, a); err != nil {
		return fmt.Errorf("apply account %s: %w", a.ID, err)
	}
	if st, ok := m.account(a.ID); ok {
		st.mu.Lock()
		before := st.contributionLocked()
		st.acct, st.plan = a, plan
		st.totals.move(before, st.contributionLocked())
		st.mu.Unlock()
		return nil
	}
	st := m.newAccountState(a, plan, PeriodAt(a.Anchor(), m.Now()))
	m.totals.move(contribution{}, st.contributionLocked())
	m.mu.Lock()
	m.accounts[a.ID] = st
	m.mu.Unlock()
	return nil
}

// ApplyKey makes a replicated key this node's; a revoked key stops
// authenticating here at once.
func (m *Meter) ApplyKey(ctx context.Context, k APIKey) error {
	m.adminMu.Lock()
	defer m.adminMu.Unlock()
	if err := m.store.PutKey(ctx, k); err != nil {
		return fmt.Errorf("apply key %s: %w", k.ID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byKeyID[k.ID] = &k
	if k.Revoked() {
		delete(m.byHash, k.Hash)
	} else {
		m.byHash[k.Hash] = &k
	}
	return nil
}
