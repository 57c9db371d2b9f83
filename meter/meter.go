package meter

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Config configures a Meter. Store and Plans are required.
type Config struct {
	Store Store
	Plans *Plans
	// Now is the clock (default time.Now); tests freeze and advance it.
	Now func() time.Time
	// Async, when true, answers a call as soon as its event is queued for
	// the ledger instead of after the commit that holds it. Calls that
	// carry an idempotency id always wait for their commit.
	Async bool
	// Folder turns request paths into endpoint templates (default: the
	// built-in rules only).
	Folder *EndpointFolder
	// MaxEndpoints caps distinct endpoint templates per account (default
	// 500); calls to further templates are counted under OtherEndpoint.
	MaxEndpoints int
	// MaxAccounts and MaxKeysPerAccount bound memory (0 = no limit).
	MaxAccounts       int
	MaxKeysPerAccount int
	// Allowance, in cluster mode, must grant every admission of a
	// hard-limited plan (nil: decide from this node's counters alone).
	Allowance Allowance
	// Shared, in cluster mode, receives every account and key write before
	// the ledger does (nil: the ledger is the only home).
	Shared SharedState
	// Peers, in cluster mode, adds the other nodes' published counts to
	// Quota and to each decision's answer (nil: this node's counts only).
	Peers Peers
}

// Meter decides and counts calls in memory and records each one in the
// Store. It is safe for concurrent use.
type Meter struct {
	store        Store
	plans        *Plans
	now          func() time.Time
	async        bool
	folder       *EndpointFolder
	maxEndpoints int
	maxAccounts  int
	maxKeys      int
	allowance    Allowance   // nil outside cluster mode
	shared       SharedState // nil outside cluster mode
	peers        Peers       // nil outside cluster mode

	// adminMu serialises account and key changes, so a check (does this id
	// exist?) and the write that follows it cannot interleave with another.
	adminMu sync.Mutex

	// mu guards the three maps below; the hot path only reads them.
	mu       sync.RWMutex
	accounts map[string]*accountState
	byHash   map[KeyHash]*APIKey
	byKeyID  map[string]*APIKey

	inflight inflightTable

	// totals keep the overview's figures as accounts change.
	totals *overviewTotals

	// pendingMu guards pending: the accounts with a scheduled plan change
	// and when it falls due, so the overview applies due ones before it
	// reads the totals (accounts otherwise roll lazily).
	pendingMu sync.Mutex
	pending   map[string]time.Time
	// unsaved are the accounts whose scheduled plan change is in force
	// in memory but not yet stored (planchange.go).
	unsaved map[string]struct{}
	// notices: crossing detection and the notice sink (notice.go).
	notices noticeState
}

// New creates a Meter and loads accounts, keys and the current period's
// counters from the store: O(accounts), never O(events).
func New(ctx context.Context, cfg Config) (*Meter, error) {
	m := &Meter{store: cfg.Store, plans: cfg.Plans, now: cfg.Now, async: cfg.Async,
		folder: cfg.Folder, maxEndpoints: cfg.MaxEndpoints, maxAccounts: cfg.MaxAccounts,
		maxKeys: cfg.MaxKeysPerAccount, accounts: map[string]*accountState{},
		byHash: map[KeyHash]*APIKey{}, byKeyID: map[string]*APIKey{}}
	m.allowance, m.shared, m.peers = cfg.Allowance, cfg.Shared, cfg.Peers
	m.inflight.m = map[string]*inflightCall{}
	m.totals = newOverviewTotals()
	m.pending = map[string]time.Time{}
	m.unsaved = map[string]struct{}{}
	if m.now == nil {
		m.now = time.Now
	}
	if m.plans == nil {
		m.plans = DefaultPlans()
	}
	if m.maxEndpoints <= 0 {
		m.maxEndpoints = 500
	}
	if m.folder == nil {
		f, err := NewEndpointFolder(nil)
		if err != nil {
			return nil, err
		}
		m.folder = f
	}
	if err := m.load(ctx); err != nil {
		return nil, fmt.Errorf("load meter state: %w", err)
	}
	return m, nil
}

func (m *Meter) load(ctx context.Context) error {
	accounts, err := m.store.Accounts(ctx)
	if err != nil {
		return err
	}
	if err := m.loadAccounts(ctx, accounts); err != nil {
		return err
	}
	keys, err := m.store.Keys(ctx)
	if err != nil {
		return err
	}
	for i := range keys {
		k := keys[i]
		m.byKeyID[k.ID] = &k
		if !k.Revoked() {
			m.byHash[k.Hash] = &k
		}
	}
	return nil
}

// loadAccounts builds every account's state in its current period, with
// the counters read in one go.
func (m *Meter) loadAccounts(ctx context.Context, accounts []Account) error {
	now := m.now().UTC()
	states := make([]*accountState, len(accounts))
	keys := make([]CounterKey, len(accounts))
	for i, stored := range accounts {
		a, due := stored.ApplyDuePlanChange(now)
		plan, ok := m.plans.Get(a.Plan)
		if !ok {
			return fmt.Errorf("account %s: %w %q (missing from the plans file?)", a.ID, ErrUnknownPlan, a.Plan)
		}
		states[i] = m.newAccountState(a, plan, PeriodAt(a.Anchor(), now))
		if due { // in force, not yet stored: planchange.go
			states[i].planDue = scheduledPlanNotice(stored, a, states[i].period, 0)
			m.markUnsaved(a.ID)
		}
		keys[i] = CounterKey{AccountID: a.ID, PeriodStart: states[i].period.Start}
	}
	counters, err := m.store.PeriodCounters(ctx, keys)
	if err != nil {
		return err
	}
	for i, st := range states {
		c := counters[i]
		st.calls, st.overage, st.denied, st.lastCallAt = c.Calls, c.Overage, c.Denied, c.LastCallAt
		if st.planDue != nil {
			st.planDue.Calls = c.Calls
		}
		st.overageMicros = c.PricedOverageMicros(st.plan)
		m.totals.move(contribution{}, st.contributionLocked())
		m.accounts[st.id] = st
		m.trackPending(st.acct)
	}
	return nil
}

// Plans returns the configured plans.
func (m *Meter) Plans() *Plans { return m.plans }

// Now returns the meter's clock reading in UTC.
func (m *Meter) Now() time.Time { return m.now().UTC() }

// NodeID is the node id stamped on this meter's events.
func (m *Meter) NodeID() string { return m.store.NodeID() }

func (m *Meter) account(id string) (*accountState, bool) {
	m.mu.RLock()
	st, ok := m.accounts[id]
	m.mu.RUnlock()
	return st, ok
}

// trackPending remembers (or forgets) an account's scheduled plan change.
func (m *Meter) trackPending(a Account) {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	if a.PendingPlanAt == nil {
		delete(m.pending, a.ID)
		return
	}
	m.pending[a.ID] = *a.PendingPlanAt
}

// applyDuePlanChanges rolls the accounts whose scheduled change is due, so
// figures read from running totals see the plan in force.
func (m *Meter) applyDuePlanChanges(now time.Time) {
	m.pendingMu.Lock()
	var due []string
	for id, at := range m.pending {
		if !now.Before(at) {
			due = append(due, id)
			delete(m.pending, id)
			m.unsaved[id] = struct{}{} // planchange.go stores it
		}
	}
	m.pendingMu.Unlock()
	for _, id := range due {
		if st, ok := m.account(id); ok {
			st.mu.Lock()
			st.rollLocked(now)
			st.mu.Unlock()
		}
	}
}
