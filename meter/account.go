package meter

import (
	"strings"
	"time"
)

// Account is a customer of the metered API.
type Account struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Email            string `json:"email"`
	Plan             string `json:"plan"`
	StripeCustomerID string `json:"stripe_customer_id,omitempty"`
	// MonthlyPriceCents overrides the plan's price (enterprise contracts).
	// Zero means "use the plan's price".
	MonthlyPriceCents int64 `json:"monthly_price_cents,omitempty"`
	// BillingAnchor, when set, makes periods run anchor-to-anchor instead of
	// by calendar month.
	BillingAnchor *time.Time `json:"billing_anchor,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	// SuspendedAt, when set, makes every call of the account a denial
	// (answered 403 account_suspended, counted as denied) until resumed.
	SuspendedAt *time.Time `json:"suspended_at,omitempty"`
	// DeletedAt, when set, marks a deleted account: its keys are revoked
	// and its calls refused, but the record, its usage history and its
	// billing stay, so overage already run up is still billed and the id
	// cannot be reused.
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	// PendingPlan is a scheduled plan change (a downgrade waits for the
	// end of the period the customer paid for); it takes effect at
	// PendingPlanAt, with PendingPriceCents as the price override (0: the
	// plan's price). Both are empty when nothing is scheduled.
	PendingPlan       string     `json:"pending_plan,omitempty"`
	PendingPlanAt     *time.Time `json:"pending_plan_at,omitempty"`
	PendingPriceCents int64      `json:"pending_monthly_price_cents,omitempty"`
}

// ApplyDuePlanChange returns a with its scheduled plan change applied if
// it is due at now, and whether it was.
func (a Account) ApplyDuePlanChange(now time.Time) (Account, bool) {
	if a.PendingPlan == "" || a.PendingPlanAt == nil || now.Before(*a.PendingPlanAt) {
		return a, false
	}
	a.Plan, a.MonthlyPriceCents = a.PendingPlan, a.PendingPriceCents
	a.CancelPlanChange()
	return a, true
}

// CancelPlanChange drops a scheduled plan change.
func (a *Account) CancelPlanChange() {
	a.PendingPlan, a.PendingPlanAt, a.PendingPriceCents = "", nil, 0
}

// Account statuses, as Status reports them.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusDeleted   = "deleted"
)

// Status is active, suspended or deleted (deleted wins).
func (a *Account) Status() string {
	switch {
	case a.DeletedAt != nil:
		return StatusDeleted
	case a.SuspendedAt != nil:
		return StatusSuspended
	}
	return StatusActive
}

// Blocked reports whether the account's calls are refused whatever its
// quota: it is suspended or deleted.
func (a *Account) Blocked() bool { return a.SuspendedAt != nil || a.DeletedAt != nil }

// Anchor returns the billing anchor, or the zero time for calendar months.
func (a *Account) Anchor() time.Time {
	if a.BillingAnchor == nil {
		return time.Time{}
	}
	return *a.BillingAnchor
}

// APIKey is an account's credential. Only the SHA-256 of the plaintext is
// ever stored; the plaintext is shown once, at creation.
type APIKey struct {
	ID        string     `json:"id"`
	AccountID string     `json:"account_id"`
	Prefix    string     `json:"prefix"`
	Hash      KeyHash    `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Revoked reports whether the key has been revoked.
func (k *APIKey) Revoked() bool { return k.RevokedAt != nil }

// matches reports whether the account's id, name or email contains
// search (already lower-cased by the caller), ignoring case.
func (a *Account) matches(search string) bool {
	return search == "" || strings.Contains(strings.ToLower(a.ID), search) ||
		strings.Contains(strings.ToLower(a.Name), search) || strings.Contains(strings.ToLower(a.Email), search)
}
