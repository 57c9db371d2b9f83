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
}

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
