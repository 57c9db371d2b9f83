package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Account is an account as the admin API shows it, with its keys (never
// their plaintext).
type Account struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	Email             string     `json:"email"`
	Plan              string     `json:"plan"`
	StripeCustomerID  string     `json:"stripe_customer_id,omitempty"`
	MonthlyPriceCents int64      `json:"monthly_price_cents,omitempty"`
	BillingAnchor     *time.Time `json:"billing_anchor,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	SuspendedAt       *time.Time `json:"suspended_at,omitempty"`
	DeletedAt         *time.Time `json:"deleted_at,omitempty"`
	Keys              []Key      `json:"keys"`
}

// Status is active, suspended or deleted.
func (a Account) Status() string {
	switch {
	case a.DeletedAt != nil:
		return "deleted"
	case a.SuspendedAt != nil:
		return "suspended"
	}
	return "active"
}

// Key is an API key's record.
type Key struct {
	ID        string     `json:"id"`
	AccountID string     `json:"account_id"`
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// NewAccount is what CreateAccount sends; empty fields get meterd's
// defaults (a random id, the default plan).
type NewAccount struct {
	ID                string `json:"id,omitempty"`
	Name              string `json:"name"`
	Email             string `json:"email,omitempty"`
	Plan              string `json:"plan,omitempty"`
	StripeCustomerID  string `json:"stripe_customer_id,omitempty"`
	MonthlyPriceCents int64  `json:"monthly_price_cents,omitempty"`
}

// AccountPatch lists what UpdateAccount changes; nil fields stay.
type AccountPatch struct {
	Name              *string `json:"name,omitempty"`
	Email             *string `json:"email,omitempty"`
	Plan              *string `json:"plan,omitempty"`
	StripeCustomerID  *string `json:"stripe_customer_id,omitempty"`
	MonthlyPriceCents *int64  `json:"monthly_price_cents,omitempty"`
}

// IssuedKey is a new key with its plaintext, shown this once.
type IssuedKey struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Key       string    `json:"key"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

// AccountPage is one page of ListAccounts.
type AccountPage struct {
	Accounts   []Account `json:"accounts"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// ListOptions pages and filters ListAccounts.
type ListOptions struct {
	Cursor string
	Limit  int    // 0: meterd's default (100)
	Status string // "", active, suspended or deleted
}

// ListAccounts reads one page of accounts in id order.
func (c *Client) ListAccounts(ctx context.Context, o ListOptions) (AccountPage, error) {
	q := url.Values{}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Status != "" {
		q.Set("status", o.Status)
	}
	var p AccountPage
	_, _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/admin/accounts", query: q,
		auth: authAdmin, idempotent: true}, &p)
	return p, err
}

// AllAccounts follows the cursor through every page.
func (c *Client) AllAccounts(ctx context.Context, status string) ([]Account, error) {
	var all []Account
	o := ListOptions{Status: status, Limit: 1000}
	for {
		p, err := c.ListAccounts(ctx, o)
		if err != nil {
			return all, err
		}
		all = append(all, p.Accounts...)
		if p.NextCursor == "" {
			return all, nil
		}
		o.Cursor = p.NextCursor
	}
}

// CreateAccount creates an account. It is retried after a transport error
// only when it names its id (a second attempt then fails with
// account_exists instead of creating a twin).
func (c *Client) CreateAccount(ctx context.Context, a NewAccount) (Account, error) {
	var out Account
	_, _, err := c.do(ctx, request{method: http.MethodPost, path: "/api/admin/accounts", body: a,
		auth: authAdmin, idempotent: a.ID != ""}, &out)
	return out, err
}

// GetAccount reads an account and its keys.
func (c *Client) GetAccount(ctx context.Context, id string) (Account, error) {
	return c.accountCall(ctx, http.MethodGet, "/api/admin/accounts/"+url.PathEscape(id), nil)
}

// UpdateAccount changes an account's plan, name, email, Stripe customer or
// price.
func (c *Client) UpdateAccount(ctx context.Context, id string, p AccountPatch) (Account, error) {
	return c.accountCall(ctx, http.MethodPatch, "/api/admin/accounts/"+url.PathEscape(id), p)
}

// SuspendAccount refuses the account's calls (403 account_suspended)
// until ResumeAccount.
func (c *Client) SuspendAccount(ctx context.Context, id string) (Account, error) {
	return c.accountCall(ctx, http.MethodPost, "/api/admin/accounts/"+url.PathEscape(id)+"/suspend", nil)
}

// ResumeAccount lifts a suspension.
func (c *Client) ResumeAccount(ctx context.Context, id string) (Account, error) {
	return c.accountCall(ctx, http.MethodPost, "/api/admin/accounts/"+url.PathEscape(id)+"/resume", nil)
}

// DeleteAccount revokes the account's keys and refuses its calls; its
// history and billing are kept.
func (c *Client) DeleteAccount(ctx context.Context, id string) (Account, error) {
	return c.accountCall(ctx, http.MethodDelete, "/api/admin/accounts/"+url.PathEscape(id), nil)
}

// accountCall sends an admin request answered by an account. All of them
// are idempotent (suspend, resume and delete too).
func (c *Client) accountCall(ctx context.Context, method, path string, body any) (Account, error) {
	var out Account
	_, _, err := c.do(ctx, request{method: method, path: path, body: body, auth: authAdmin, idempotent: true}, &out)
	return out, err
}

// IssueKey creates a key for an account; the plaintext is in the answer
// only. Not retried after a transport error (it could issue two).
func (c *Client) IssueKey(ctx context.Context, accountID string) (IssuedKey, error) {
	var out IssuedKey
	_, _, err := c.do(ctx, request{method: http.MethodPost,
		path: "/api/admin/accounts/" + url.PathEscape(accountID) + "/keys", auth: authAdmin}, &out)
	return out, err
}

// RevokeKey revokes a key at once.
func (c *Client) RevokeKey(ctx context.Context, keyID string) error {
	_, _, err := c.do(ctx, request{method: http.MethodDelete, path: "/api/admin/keys/" + url.PathEscape(keyID),
		auth: authAdmin, idempotent: true}, nil)
	return err
}
