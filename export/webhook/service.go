package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/meterd/meterd/meter"
)

// Admin manages endpoints and their deliveries (the admin API's side).
type Admin struct {
	store         meter.WebhookStore
	now           func() time.Time
	refusePrivate bool
	grace         time.Duration
}

// NewAdmin returns the endpoint administration over store. now may be
// nil (time.Now); grace is how long a rotated-out secret stays valid
// (default 24 h).
func NewAdmin(store meter.WebhookStore, now func() time.Time, refusePrivate bool, grace time.Duration) *Admin {
	if now == nil {
		now = time.Now
	}
	if grace <= 0 {
		grace = 24 * time.Hour
	}
	return &Admin{store: store, now: now, refusePrivate: refusePrivate, grace: grace}
}

// CreateEndpoint validates and stores e with secret (generated when
// empty) and returns it with the secret, which is shown only here and
// on rotation.
func (a *Admin) CreateEndpoint(ctx context.Context, e meter.WebhookEndpoint, secret string) (meter.WebhookEndpoint, string, error) {
	if err := a.validate(&e); err != nil {
		return e, "", err
	}
	secret, err := a.secretOrNew(secret)
	if err != nil {
		return e, "", err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return e, "", err
	}
	now := a.now().UTC()
	e.ID, e.CreatedAt, e.UpdatedAt = "wh_"+hex.EncodeToString(id[:]), now, now
	e.Secrets = []meter.WebhookSecret{{Secret: secret}}
	if err := a.store.PutWebhookEndpoint(ctx, e); err != nil {
		return e, "", fmt.Errorf("create webhook: %w", err)
	}
	return e, secret, nil
}

func (a *Admin) secretOrNew(s string) (string, error) {
	if s == "" {
		return NewSecret()
	}
	_, err := parseSecret(s)
	return s, err
}

func (a *Admin) validate(e *meter.WebhookEndpoint) error {
	if err := checkURL(e.URL, a.refusePrivate); err != nil {
		return err
	}
	if len(e.Description) > 512 {
		return meter.Invalid("description", "must be at most 512 bytes")
	}
	for _, t := range e.Types {
		if !meter.ValidNoticeType(t) {
			return meter.Invalid("event_types", "unknown event type %q", t)
		}
	}
	slices.Sort(e.Types)
	e.Types = slices.Compact(e.Types)
	return nil
}

// Endpoint returns one endpoint.
func (a *Admin) Endpoint(ctx context.Context, id string) (meter.WebhookEndpoint, error) {
	eps, err := a.store.WebhookEndpoints(ctx)
	if err != nil {
		return meter.WebhookEndpoint{}, err
	}
	for _, e := range eps {
		if e.ID == id {
			return e, nil
		}
	}
	return meter.WebhookEndpoint{}, meter.ErrWebhookNotFound
}

// Endpoints lists every endpoint.
func (a *Admin) Endpoints(ctx context.Context) ([]meter.WebhookEndpoint, error) {
	return a.store.WebhookEndpoints(ctx)
}

// UpdateEndpoint applies p; the new secret is returned when p rotated it.
func (a *Admin) UpdateEndpoint(ctx context.Context, id string, p meter.WebhookPatch) (meter.WebhookEndpoint, string, error) {
	e, err := a.Endpoint(ctx, id)
	if err != nil {
		return e, "", err
	}
	applyPatch(&e, p)
	if err := a.validate(&e); err != nil {
		return e, "", err
	}
	now := a.now().UTC()
	var secret string
	if p.RotateSecret {
		if secret, err = a.secretOrNew(deref(p.Secret)); err != nil {
			return e, "", err
		}
		e.Secrets = rotate(e.Secrets, secret, now, now.Add(a.grace))
	}
	e.UpdatedAt = now
	if err := a.store.PutWebhookEndpoint(ctx, e); err != nil {
		return e, "", fmt.Errorf("update webhook: %w", err)
	}
	return e, secret, nil
}

func applyPatch(e *meter.WebhookEndpoint, p meter.WebhookPatch) {
	if p.URL != nil {
		e.URL = *p.URL
	}
	if p.Description != nil {
		e.Description = *p.Description
	}
	if p.Types != nil {
		e.Types = slices.Clone(*p.Types)
	}
	if p.Enabled != nil {
		e.Enabled = *p.Enabled
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// rotate puts secret first; the secrets still valid stay, expiring at
// until at the latest; expired ones are dropped.
func rotate(old []meter.WebhookSecret, secret string, now, until time.Time) []meter.WebhookSecret {
	out := []meter.WebhookSecret{{Secret: secret}}
	for _, s := range old {
		if s.ExpiresAt != nil && !now.Before(*s.ExpiresAt) {
			continue
		}
		if s.ExpiresAt == nil || s.ExpiresAt.After(until) {
			s.ExpiresAt = &until
		}
		out = append(out, s)
	}
	return out
}

// DeleteEndpoint removes an endpoint and its pending deliveries.
func (a *Admin) DeleteEndpoint(ctx context.Context, id string) error {
	return a.store.DeleteWebhookEndpoint(ctx, id)
}

// Deliveries is an endpoint's delivery log, newest first.
func (a *Admin) Deliveries(ctx context.Context, id string, status meter.DeliveryStatus, limit int) ([]meter.WebhookDelivery, error) {
	if _, err := a.Endpoint(ctx, id); err != nil {
		return nil, err
	}
	return a.store.DeliveryLog(ctx, id, status, limit)
}

// Replay sends again an endpoint's dead deliveries (every finished one
// with all) created at or after since.
func (a *Admin) Replay(ctx context.Context, id string, since time.Time, all bool) (int, error) {
	return a.store.Replay(ctx, id, since, a.now().UTC(), all)
}
