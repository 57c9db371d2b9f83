package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Webhook is a webhook endpoint as the admin API shows it. Secret is set
// only in the answer that made it (create, or an update that rotated it).
type Webhook struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Description string    `json:"description,omitempty"`
	EventTypes  []string  `json:"event_types"`
	Enabled     bool      `json:"enabled"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Secret      string    `json:"secret,omitempty"`
}

// NewWebhook is what CreateWebhook sends. Empty EventTypes means every
// type; Enabled nil means enabled; an empty Secret lets meterd make one.
type NewWebhook struct {
	URL         string   `json:"url"`
	Description string   `json:"description,omitempty"`
	EventTypes  []string `json:"event_types,omitempty"`
	Enabled     *bool    `json:"enabled,omitempty"`
	Secret      string   `json:"secret,omitempty"`
}

// WebhookPatch lists what UpdateWebhook changes; nil fields stay.
// RotateSecret makes a new signing secret (Secret, if set, else a random
// one); the old one stays valid for meterd's rotation grace.
type WebhookPatch struct {
	URL          *string   `json:"url,omitempty"`
	Description  *string   `json:"description,omitempty"`
	EventTypes   *[]string `json:"event_types,omitempty"`
	Enabled      *bool     `json:"enabled,omitempty"`
	RotateSecret bool      `json:"rotate_secret,omitempty"`
	Secret       *string   `json:"secret,omitempty"`
}

// Delivery is one notice on its way to one endpoint: pending, delivered
// or dead, with its attempts and the receiver's last answer.
type Delivery struct {
	EndpointID   string    `json:"endpoint_id"`
	Seq          uint64    `json:"seq"`
	NoticeID     string    `json:"notice_id"`
	EventType    string    `json:"event_type"`
	AccountID    string    `json:"account_id"`
	Status       string    `json:"status"`
	Attempts     int       `json:"attempts"`
	NextAttempt  time.Time `json:"next_attempt,omitzero"`
	FirstAttempt time.Time `json:"first_attempt,omitzero"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	LastStatus   int       `json:"last_status,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
	DeliveredAt  time.Time `json:"delivered_at,omitzero"`
	CreatedAt    time.Time `json:"created_at"`
}

// DeliveryOptions filters Deliveries.
type DeliveryOptions struct {
	Status string // "", pending, delivered or dead
	Limit  int    // 0: meterd's default (100); at most 1000
}

func webhookPath(id string) string { return "/api/admin/webhooks/" + url.PathEscape(id) }

// ListWebhooks reads every webhook endpoint.
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	var out struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	_, _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/admin/webhooks", auth: authAdmin, idempotent: true}, &out)
	return out.Webhooks, err
}

// CreateWebhook adds an endpoint; the answer carries its secret, this
// once. Not retried after a transport error (it could add two).
func (c *Client) CreateWebhook(ctx context.Context, w NewWebhook) (Webhook, error) {
	var out Webhook
	_, _, err := c.do(ctx, request{method: http.MethodPost, path: "/api/admin/webhooks", body: w, auth: authAdmin}, &out)
	return out, err
}

// GetWebhook reads one endpoint (never its secret).
func (c *Client) GetWebhook(ctx context.Context, id string) (Webhook, error) {
	var out Webhook
	_, _, err := c.do(ctx, request{method: http.MethodGet, path: webhookPath(id), auth: authAdmin, idempotent: true}, &out)
	return out, err
}

// UpdateWebhook changes an endpoint. It is retried after a transport
// error unless it rotates the secret (a second rotation would push the
// first new secret out).
func (c *Client) UpdateWebhook(ctx context.Context, id string, p WebhookPatch) (Webhook, error) {
	var out Webhook
	_, _, err := c.do(ctx, request{method: http.MethodPatch, path: webhookPath(id), body: p, auth: authAdmin,
		idempotent: !p.RotateSecret}, &out)
	return out, err
}

// DeleteWebhook removes an endpoint and stops its deliveries.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, _, err := c.do(ctx, request{method: http.MethodDelete, path: webhookPath(id), auth: authAdmin, idempotent: true}, nil)
	return err
}

// Deliveries reads an endpoint's delivery log, newest first.
func (c *Client) Deliveries(ctx context.Context, id string, o DeliveryOptions) ([]Delivery, error) {
	q := url.Values{}
	if o.Status != "" {
		q.Set("status", o.Status)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var out struct {
		Deliveries []Delivery `json:"deliveries"`
	}
	_, _, err := c.do(ctx, request{method: http.MethodGet, path: webhookPath(id) + "/deliveries", query: q,
		auth: authAdmin, idempotent: true}, &out)
	return out.Deliveries, err
}

// ReplayWebhook sends again the endpoint's dead deliveries of notices
// made at or after since (delivered ones too when all), and returns how
// many it queued. Safe to send again: a delivery already pending is not
// queued twice, and a replay keeps its webhook-id for the receiver to
// deduplicate.
func (c *Client) ReplayWebhook(ctx context.Context, id string, since time.Time, all bool) (int, error) {
	q := url.Values{"since": {since.UTC().Format(time.RFC3339)}}
	if all {
		q.Set("all", "true")
	}
	var out struct {
		Replayed int `json:"replayed"`
	}
	_, _, err := c.do(ctx, request{method: http.MethodPost, path: webhookPath(id) + "/replay", query: q,
		auth: authAdmin, idempotent: true}, &out)
	return out.Replayed, err
}
