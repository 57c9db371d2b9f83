package meter

import (
	"context"
	"fmt"
	"net/mail"
	"sort"
	"time"
)

// AccountPatch lists the fields an admin may change; nil means unchanged.
type AccountPatch struct {
	Name              *string
	Email             *string
	Plan              *string
	StripeCustomerID  *string
	MonthlyPriceCents *int64
	// Effective is when a plan change applies: "now", or "" / "period_end"
	// for the default (upgrades at once, downgrades at period end).
	Effective *string
	// CancelPending drops a scheduled plan change.
	CancelPending bool
}

// CreateAccount validates and stores a new account. An empty ID gets a
// random one; an empty Plan gets the default plan.
func (m *Meter) CreateAccount(ctx context.Context, a Account) (Account, error) {
	if a.ID == "" {
		a.ID = NewID("acct_")
	}
	if a.Plan == "" {
		a.Plan = m.plans.Default()
	}
	if a.BillingAnchor != nil {
		// Stored to the second, so no reset is ever announced early.
		t := a.BillingAnchor.UTC().Truncate(time.Second)
		a.BillingAnchor = &t
	}
	a.CancelPlanChange()
	a.CreatedAt = m.Now()
	if err := m.validateAccount(&a); err != nil {
		return Account{}, err
	}
	m.adminMu.Lock()
	defer m.adminMu.Unlock()
	if _, ok := m.account(a.ID); ok {
		return Account{}, ErrAccountExists
	}
	if m.maxAccounts > 0 && m.AccountCount() >= m.maxAccounts {
		return Account{}, fmt.Errorf("%w: at most %d accounts", ErrLimitReached, m.maxAccounts)
	}
	if err := m.shareAccount(ctx, a, true); err != nil {
		return Account{}, fmt.Errorf("create account: %w", err)
	}
	if err := m.store.PutAccount(ctx, a); err != nil {
		return Account{}, fmt.Errorf("create account: %w", err)
	}
	plan, _ := m.plans.Get(a.Plan)
	st := m.newAccountState(a, plan, PeriodAt(a.Anchor(), a.CreatedAt))
	m.totals.move(contribution{}, st.contributionLocked())
	m.mu.Lock()
	m.accounts[a.ID] = st
	m.mu.Unlock()
	return a, nil
}

func (m *Meter) validateAccount(a *Account) error {
	switch {
	case !validID(a.ID):
		return Invalid("id", "must be 1-64 characters of letters, digits, '_', '-' or '.'")
	case len(a.Name) > 200 || !printable(a.Name):
		return Invalid("name", "must be at most 200 printable characters")
	case a.Email != "" && !validEmail(a.Email):
		return Invalid("email", "must be an email address")
	case len(a.StripeCustomerID) > 255 || !printable(a.StripeCustomerID):
		return Invalid("stripe_customer_id", "must be at most 255 printable characters")
	case a.MonthlyPriceCents < 0:
		return Invalid("monthly_price_cents", "must be >= 0")
	}
	if _, ok := m.plans.Get(a.Plan); !ok {
		return Invalid("plan", "unknown plan %q (have %v)", a.Plan, m.plans.Names())
	}
	return nil
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func validEmail(s string) bool {
	if len(s) > 254 {
		return false
	}
	addr, err := mail.ParseAddress(s)
	return err == nil && addr.Address == s
}

// Account returns an account by id.
func (m *Meter) Account(id string) (Account, error) {
	st, ok := m.account(id)
	if !ok {
		return Account{}, ErrAccountNotFound
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rollLocked(m.Now())
	return st.acct, nil
}

// UpdateAccount applies a patch. A plan change follows the schedule rule
// (SchedulePlanChange): an upgrade takes effect at once (the very next
// call is decided against the new plan), a downgrade at the end of the
// current period unless p.Effective is "now"; a scheduled change shows as
// PendingPlan and PendingPlanAt. A plan change drops the account's price
// override unless the patch sets one.
func (m *Meter) UpdateAccount(ctx context.Context, id string, p AccountPatch) (Account, error) {
	m.adminMu.Lock()
	defer m.adminMu.Unlock()
	st, ok := m.account(id)
	if !ok {
		return Account{}, ErrAccountNotFound
	}
	st.mu.Lock()
	st.rollLocked(m.Now())
	a, cur, period := st.acct, st.plan, st.period
	st.mu.Unlock()
	if a.DeletedAt != nil {
		return Account{}, ErrAccountDeleted
	}
	if err := m.applyPlanPatch(&a, cur, period, p); err != nil {
		return Account{}, err
	}
	applyPatch(&a, p)
	if err := m.validateAccount(&a); err != nil {
		return Account{}, err
	}
	if err := m.shareAccount(ctx, a, false); err != nil {
		return Account{}, fmt.Errorf("update account: %w", err)
	}
	if err := m.storeAccount(ctx, st, a, m.planNotice(st, a)); err != nil { // planchange.go, notice.go
		return Account{}, fmt.Errorf("update account: %w", err)
	}
	plan, _ := m.plans.Get(a.Plan)
	st.mu.Lock()
	before := st.contributionLocked()
	st.acct, st.plan = a, plan
	st.totals.move(before, st.contributionLocked())
	st.mu.Unlock()
	m.trackPending(a)
	return a, nil
}

// applyPlanPatch applies or schedules the plan change of a patch.
func (m *Meter) applyPlanPatch(a *Account, cur Plan, period Period, p AccountPatch) error {
	now := p.Effective != nil && *p.Effective == "now"
	if p.Effective != nil && !now && *p.Effective != "" && *p.Effective != "period_end" {
		return Invalid("effective", "must be \"now\" or \"period_end\"")
	}
	if p.CancelPending || (p.Plan != nil && *p.Plan == a.Plan) {
		a.CancelPlanChange()
	}
	if p.Plan == nil || *p.Plan == a.Plan {
		return nil
	}
	to, ok := m.plans.Get(*p.Plan)
	if !ok {
		return Invalid("plan", "unknown plan %q (have %v)", *p.Plan, m.plans.Names())
	}
	var price int64
	if p.MonthlyPriceCents != nil {
		price = *p.MonthlyPriceCents
	}
	change := SchedulePlanChange(cur, to, period, now)
	if change.Now {
		a.CancelPlanChange()
		a.Plan, a.MonthlyPriceCents = to.Name, price
		return nil
	}
	at := change.At
	a.PendingPlan, a.PendingPlanAt, a.PendingPriceCents = to.Name, &at, price
	return nil
}

func applyPatch(a *Account, p AccountPatch) {
	if p.Name != nil {
		a.Name = *p.Name
	}
	if p.Email != nil {
		a.Email = *p.Email
	}
	if p.StripeCustomerID != nil {
		a.StripeCustomerID = *p.StripeCustomerID
	}
	if p.MonthlyPriceCents != nil && (p.Plan == nil || a.PendingPlan == "" || a.Plan == *p.Plan) {
		a.MonthlyPriceCents = *p.MonthlyPriceCents
	}
}

// IssueKey creates an API key for an account and returns it with its
// plaintext, which is never stored and cannot be shown again.
func (m *Meter) IssueKey(ctx context.Context, accountID string) (APIKey, string, error) {
	m.adminMu.Lock()
	defer m.adminMu.Unlock()
	if a, err := m.Account(accountID); err != nil {
		return APIKey{}, "", err
	} else if a.DeletedAt != nil {
		return APIKey{}, "", ErrAccountDeleted
	}
	if m.maxKeys > 0 && m.activeKeys(accountID) >= m.maxKeys {
		return APIKey{}, "", fmt.Errorf("%w: at most %d keys per account", ErrLimitReached, m.maxKeys)
	}
	plaintext, prefix, hash, err := NewKey()
	if err != nil {
		return APIKey{}, "", fmt.Errorf("issue key: %w", err)
	}
	k := APIKey{ID: NewID("key_"), AccountID: accountID, Prefix: prefix, Hash: hash, CreatedAt: m.Now()}
	if err := m.shareKey(ctx, k); err != nil {
		return APIKey{}, "", fmt.Errorf("issue key: %w", err)
	}
	if err := m.store.PutKey(ctx, k); err != nil {
		return APIKey{}, "", fmt.Errorf("issue key: %w", err)
	}
	m.mu.Lock()
	m.byKeyID[k.ID], m.byHash[k.Hash] = &k, &k
	m.mu.Unlock()
	return k, plaintext, nil
}

func (m *Meter) activeKeys(accountID string) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for _, k := range m.byKeyID {
		if k.AccountID == accountID && !k.Revoked() {
			n++
		}
	}
	return n
}

// RevokeKey revokes a key at once; revoking twice is not an error.
func (m *Meter) RevokeKey(ctx context.Context, keyID string) error {
	m.adminMu.Lock()
	defer m.adminMu.Unlock()
	m.mu.RLock()
	k, ok := m.byKeyID[keyID]
	m.mu.RUnlock()
	if !ok {
		return ErrKeyNotFound
	}
	if k.Revoked() {
		return nil
	}
	revoked := *k
	now := m.Now()
	revoked.RevokedAt = &now
	if err := m.shareKey(ctx, revoked); err != nil {
		return fmt.Errorf("revoke key: %w", err)
	}
	if err := m.store.PutKey(ctx, revoked); err != nil {
		return fmt.Errorf("revoke key: %w", err)
	}
	m.mu.Lock()
	m.byKeyID[keyID] = &revoked
	delete(m.byHash, revoked.Hash)
	m.mu.Unlock()
	return nil
}

// Quota returns an account's usage in its current period; in cluster mode
// with the other nodes' published counts added (Quotas stays this node's).
func (m *Meter) Quota(accountID string) (Quota, error) {
	st, ok := m.account(accountID)
	if !ok {
		return Quota{}, ErrAccountNotFound
	}
	st.mu.Lock()
	st.rollLocked(m.Now())
	q := st.snapshotLocked()
	st.mu.Unlock()
	m.withPeersQuota(&q)
	return q, nil
}

// Quotas returns every account's current-period usage, ordered by account
// id. It copies O(accounts) small records; nothing touches the disk.
func (m *Meter) Quotas() []Quota {
	m.mu.RLock()
	states := make([]*accountState, 0, len(m.accounts))
	for _, st := range m.accounts {
		states = append(states, st)
	}
	m.mu.RUnlock()
	now := m.Now()
	out := make([]Quota, 0, len(states))
	for _, st := range states {
		st.mu.Lock()
		st.rollLocked(now)
		out = append(out, st.snapshotLocked())
		st.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Account.ID < out[j].Account.ID })
	return out
}

// AccountCount is the number of accounts.
func (m *Meter) AccountCount() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.accounts)
}

// KeysOf returns an account's keys (revoked ones included), oldest first.
func (m *Meter) KeysOf(accountID string) []APIKey {
	m.mu.RLock()
	var out []APIKey
	for _, k := range m.byKeyID {
		if k.AccountID == accountID {
			out = append(out, *k)
		}
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}
