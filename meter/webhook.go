package meter

import (
	"context"
	"errors"
	"slices"
	"time"
)

// ErrWebhookNotFound: no webhook endpoint has the given id.
var ErrWebhookNotFound = errors.New("webhook endpoint not found")

// WebhookEndpoint is a receiver of notices.
type WebhookEndpoint struct {
	ID          string `json:"id"`
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	// Types are the notice types sent (empty: all).
	Types   []NoticeType `json:"event_types"`
	Enabled bool         `json:"enabled"`
	// Secrets sign deliveries; the first is current, the others are
	// previous ones still valid until their ExpiresAt (rotation).
	Secrets   []WebhookSecret `json:"-"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// WebhookSecret is one signing secret, "whsec_" + base64 of its key.
type WebhookSecret struct {
	Secret    string     `json:"secret"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Wants reports whether the endpoint takes notices of type t.
func (e *WebhookEndpoint) Wants(t NoticeType) bool {
	return e.Enabled && (len(e.Types) == 0 || slices.Contains(e.Types, t))
}

// ValidSecrets are the secrets to sign with at now: the current one and
// the previous ones not yet expired.
func (e *WebhookEndpoint) ValidSecrets(now time.Time) []string {
	var out []string
	for _, s := range e.Secrets {
		if s.ExpiresAt == nil || now.Before(*s.ExpiresAt) {
			out = append(out, s.Secret)
		}
	}
	return out
}

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// Delivery states: pending (waiting or retrying), delivered (a 2xx came
// back), dead (every attempt failed; only a replay sends it again).
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryDead      DeliveryStatus = "dead"
)

// WebhookDelivery is one notice on its way to one endpoint.
type WebhookDelivery struct {
	EndpointID string         `json:"endpoint_id"`
	Seq        uint64         `json:"seq"`
	NoticeID   string         `json:"notice_id"`
	Type       NoticeType     `json:"event_type"`
	AccountID  string         `json:"account_id"`
	Status     DeliveryStatus `json:"status"`
	Attempts   int            `json:"attempts"`
	// NextAttempt is when a pending delivery is due.
	NextAttempt  time.Time `json:"next_attempt,omitzero"`
	FirstAttempt time.Time `json:"first_attempt,omitzero"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	// LastStatus is the receiver's last HTTP status (0: no answer);
	// LastError a short reason, never the whole response body.
	LastStatus  int       `json:"last_status,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	CreatedAt   time.Time `json:"created_at"`
}

// WebhookStore is the durable side of webhooks: the outbox of notices,
// endpoints, and each delivery's state. The ledger implements it.
type WebhookStore interface {
	NoticeSink
	// Notice returns the notice stored at outbox sequence seq.
	Notice(ctx context.Context, seq uint64) (Notice, error)
	// NoticeCount is the number of notices stored; PendingCount the
	// number of deliveries not yet delivered or dead, over all endpoints.
	NoticeCount(ctx context.Context) (int, error)
	PendingCount(ctx context.Context) (int, error)
	PutWebhookEndpoint(ctx context.Context, e WebhookEndpoint) error
	DeleteWebhookEndpoint(ctx context.Context, id string) error
	WebhookEndpoints(ctx context.Context) ([]WebhookEndpoint, error)
	// FanOut creates a pending delivery for every enabled endpoint that
	// wants each notice not yet fanned out (up to limit notices), and moves
	// its cursor, in one transaction. It returns how many notices it took.
	FanOut(ctx context.Context, now time.Time, limit int) (int, error)
	// PendingDeliveries returns an endpoint's pending deliveries in
	// outbox order (up to limit).
	PendingDeliveries(ctx context.Context, endpointID string, limit int) ([]WebhookDelivery, error)
	// PendingDelivery returns one pending delivery as it stands now
	// (false if it is no longer pending).
	PendingDelivery(ctx context.Context, endpointID string, seq uint64) (WebhookDelivery, bool, error)
	// SaveDelivery stores a delivery's new state; delivered and dead ones
	// leave the pending set for the log.
	SaveDelivery(ctx context.Context, d WebhookDelivery) error
	// DeliveryLog returns an endpoint's deliveries, newest first, pending
	// ones included (status "" for all).
	DeliveryLog(ctx context.Context, endpointID string, status DeliveryStatus, limit int) ([]WebhookDelivery, error)
	// Replay moves an endpoint's finished deliveries of notices made at or
	// after since (dead ones only unless all) back to pending, due at now.
	Replay(ctx context.Context, endpointID string, since, now time.Time, all bool) (int, error)
	// PruneOutbox deletes finished deliveries and fanned-out notices
	// waiting for nothing, made before before; it returns how many.
	PruneOutbox(ctx context.Context, before time.Time) (int, error)
}

// WebhookPatch lists what an endpoint update may change; nil fields stay.
type WebhookPatch struct {
	URL         *string
	Description *string
	Types       *[]NoticeType
	Enabled     *bool
	// RotateSecret makes a new current secret (Secret if given, else a
	// random one); the old one stays valid for the rotation grace.
	RotateSecret bool
	Secret       *string
}
