package meter

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// An account's life after creation: suspended (calls refused, everything
// kept, reversible), resumed, and deleted (keys revoked, calls refused,
// the record, its usage history and its billing kept; not reversible).

// DefaultPageSize and MaxPageSize bound ListAccounts.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// AccountPage is one page of accounts ordered by id; Next is the cursor of
// the following page ("" on the last).
type AccountPage struct {
	Accounts []Account
	Next     string
}

// ListAccounts returns up to limit accounts with ids after cursor, in id
// order; status, if not empty, keeps only accounts with that Status. A
// limit of 0 means DefaultPageSize; more than MaxPageSize is invalid.
func (m *Meter) ListAccounts(cursor string, limit int, status string) (AccountPage, error) {
	switch {
	case limit == 0:
		limit = DefaultPageSize
	case limit < 0 || limit > MaxPageSize:
		return AccountPage{}, Invalid("limit", "must be between 1 and %d", MaxPageSize)
	}
	if status != "" && status != StatusActive && status != StatusSuspended && status != StatusDeleted {
		return AccountPage{}, Invalid("status", "must be active, suspended or deleted")
	}
	all := m.accountsAfter(cursor)
	out := AccountPage{Accounts: []Account{}}
	for _, a := range all {
		if status != "" && a.Status() != status {
			continue
		}
		if len(out.Accounts) == limit {
			out.Next = out.Accounts[limit-1].ID
			break
		}
		out.Accounts = append(out.Accounts, a)
	}
	return out, nil
}

// accountsAfter copies the accounts with ids after cursor, sorted by id.
func (m *Meter) accountsAfter(cursor string) []Account {
	m.mu.RLock()
	states := make([]*accountState, 0, len(m.accounts))
	for id, st := range m.accounts {
		if id > cursor {
			states = append(states, st)
		}
	}
	m.mu.RUnlock()
	out := make([]Account, 0, len(states))
	for _, st := range states {
		st.mu.Lock()
		out = append(out, st.acct)
		st.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SuspendAccount refuses the account's calls from now on: each is denied
// (403 account_suspended over HTTP) and counted as denied. Suspending a
// suspended account changes nothing.
func (m *Meter) SuspendAccount(ctx context.Context, id string) (Account, error) {
	return m.changeAccount(ctx, id, func(a *Account) {
		if a.SuspendedAt == nil {
			now := m.Now()
			a.SuspendedAt = &now
		}
	})
}

// ResumeAccount lifts a suspension.
func (m *Meter) ResumeAccount(ctx context.Context, id string) (Account, error) {
	return m.changeAccount(ctx, id, func(a *Account) { a.SuspendedAt = nil })
}

// DeleteAccount revokes every key of the account and marks it deleted: its
// calls are refused from now on, but its record, usage history, pending
// billing and export stay, and its id is never reused. Deleting twice is
// not an error.
func (m *Meter) DeleteAccount(ctx context.Context, id string) (Account, error) {
	// Marked first, so no key can be issued meanwhile; keys are revoked
	// after, and again by a repeated delete should this one fail half-way
	// (the account's calls are refused either way).
	a, err := m.changeAccount(ctx, id, func(a *Account) {
		now := m.Now()
		a.DeletedAt = &now
	})
	if errors.Is(err, ErrAccountDeleted) {
		a, err = m.Account(id)
	}
	if err != nil {
		return Account{}, fmt.Errorf("delete account: %w", err)
	}
	for _, k := range m.KeysOf(id) {
		if err := m.RevokeKey(ctx, k.ID); err != nil {
			return Account{}, fmt.Errorf("delete account: %w", err)
		}
	}
	return a, nil
}

// changeAccount applies change to a live account and stores it; a deleted
// account cannot change.
func (m *Meter) changeAccount(ctx context.Context, id string, change func(*Account)) (Account, error) {
	m.adminMu.Lock()
	defer m.adminMu.Unlock()
	st, ok := m.account(id)
	if !ok {
		return Account{}, ErrAccountNotFound
	}
	st.mu.Lock()
	a := st.acct
	st.mu.Unlock()
	if a.DeletedAt != nil {
		return Account{}, ErrAccountDeleted
	}
	change(&a)
	if err := m.shareAccount(ctx, a, false); err != nil { // cluster mode: shared state first
		return Account{}, err
	}
	if err := m.storeAccount(ctx, st, a, nil); err != nil { // planchange.go
		return Account{}, err
	}
	st.mu.Lock()
	before := st.contributionLocked()
	st.acct = a
	st.totals.move(before, st.contributionLocked())
	st.mu.Unlock()
	return a, nil
}
