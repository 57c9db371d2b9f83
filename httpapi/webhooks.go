package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/meterd/meterd/meter"
)

// Webhooks is endpoint administration (export/webhook.Admin implements it).
type Webhooks interface {
	CreateEndpoint(ctx context.Context, e meter.WebhookEndpoint, secret string) (meter.WebhookEndpoint, string, error)
	Endpoint(ctx context.Context, id string) (meter.WebhookEndpoint, error)
	Endpoints(ctx context.Context) ([]meter.WebhookEndpoint, error)
	UpdateEndpoint(ctx context.Context, id string, p meter.WebhookPatch) (meter.WebhookEndpoint, string, error)
	DeleteEndpoint(ctx context.Context, id string) error
	Deliveries(ctx context.Context, id string, status meter.DeliveryStatus, limit int) ([]meter.WebhookDelivery, error)
	Replay(ctx context.Context, id string, since time.Time, all bool) (int, error)
}

var errWebhooksOff = newError(http.StatusNotFound, "webhooks_off", "webhooks are not enabled on this server")

func (s *Server) registerWebhookRoutes(r *mux.Router) {
	r.HandleFunc("/api/admin/webhooks", s.requireAdmin(s.handleListWebhooks)).Methods(http.MethodGet)
	r.HandleFunc("/api/admin/webhooks", s.requireAdmin(s.handleCreateWebhook)).Methods(http.MethodPost)
	r.HandleFunc("/api/admin/webhooks/{id}", s.requireAdmin(s.handleGetWebhook)).Methods(http.MethodGet)
	r.HandleFunc("/api/admin/webhooks/{id}", s.requireAdmin(s.handlePatchWebhook)).Methods(http.MethodPatch)
	r.HandleFunc("/api/admin/webhooks/{id}", s.requireAdmin(s.handleDeleteWebhook)).Methods(http.MethodDelete)
	r.HandleFunc("/api/admin/webhooks/{id}/deliveries", s.requireAdmin(s.handleWebhookDeliveries)).Methods(http.MethodGet)
	r.HandleFunc("/api/admin/webhooks/{id}/replay", s.requireAdmin(s.handleReplayWebhook)).Methods(http.MethodPost)
}

// webhookRequest is the body of POST and PATCH; on PATCH absent fields
// stay as they are.
type webhookRequest struct {
	URL          *string             `json:"url"`
	Description  *string             `json:"description"`
	EventTypes   *[]meter.NoticeType `json:"event_types"`
	Enabled      *bool               `json:"enabled"`
	Secret       *string             `json:"secret"`
	RotateSecret bool                `json:"rotate_secret"`
}

// webhookResponse shows the secret only when it was just made.
type webhookResponse struct {
	meter.WebhookEndpoint
	Secret string `json:"secret,omitempty"`
}

func (s *Server) webhooksOn(w http.ResponseWriter, r *http.Request) bool {
	if s.webhooks == nil {
		s.writeError(w, r, errWebhooksOff)
		return false
	}
	return true
}

func (s *Server) handleCreateWebhook(w http.ResponseWriter, r *http.Request) {
	var req webhookRequest
	if !s.webhooksOn(w, r) || !s.decodeOrFail(w, r, &req) {
		return
	}
	if req.URL == nil {
		s.writeError(w, r, meter.Invalid("url", "is required"))
		return
	}
	e := meter.WebhookEndpoint{URL: *req.URL, Enabled: req.Enabled == nil || *req.Enabled, Types: []meter.NoticeType{}}
	if req.Description != nil {
		e.Description = *req.Description
	}
	if req.EventTypes != nil {
		e.Types = *req.EventTypes
	}
	var secret string
	if req.Secret != nil {
		secret = *req.Secret
	}
	e, secret, err := s.webhooks.CreateEndpoint(r.Context(), e, secret)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, webhookResponse{e, secret})
}

func (s *Server) decodeOrFail(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := decodeJSON(w, r, v, MaxBodyBytes); err != nil {
		s.writeError(w, r, err)
		return false
	}
	return true
}

func (s *Server) handleListWebhooks(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	eps, err := s.webhooks.Endpoints(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if eps == nil {
		eps = []meter.WebhookEndpoint{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": eps})
}

func (s *Server) handleGetWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	e, err := s.webhooks.Endpoint(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webhookResponse{WebhookEndpoint: e})
}

func (s *Server) handlePatchWebhook(w http.ResponseWriter, r *http.Request) {
	var req webhookRequest
	if !s.webhooksOn(w, r) || !s.decodeOrFail(w, r, &req) {
		return
	}
	if req.Secret != nil && !req.RotateSecret {
		s.writeError(w, r, meter.Invalid("secret", "is only accepted with rotate_secret: true"))
		return
	}
	e, secret, err := s.webhooks.UpdateEndpoint(r.Context(), mux.Vars(r)["id"], meter.WebhookPatch{URL: req.URL,
		Description: req.Description, Types: req.EventTypes, Enabled: req.Enabled,
		RotateSecret: req.RotateSecret, Secret: req.Secret})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webhookResponse{e, secret})
}

func (s *Server) handleDeleteWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	if err := s.webhooks.DeleteEndpoint(r.Context(), mux.Vars(r)["id"]); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleWebhookDeliveries is the delivery log: ?status=pending|delivered|dead
// and ?limit= (1..1000, default 100), newest first.
func (s *Server) handleWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	q := r.URL.Query()
	status := meter.DeliveryStatus(q.Get("status"))
	switch status {
	case "", meter.DeliveryPending, meter.DeliveryDelivered, meter.DeliveryDead:
	default:
		s.writeError(w, r, meter.Invalid("status", "must be pending, delivered or dead"))
		return
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.writeError(w, r, meter.Invalid("limit", "must be between 1 and 1000"))
			return
		}
		limit = n
	}
	ds, err := s.webhooks.Deliveries(r.Context(), mux.Vars(r)["id"], status, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ds == nil {
		ds = []meter.WebhookDelivery{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
}

// handleReplayWebhook sends again the endpoint's dead deliveries made at
// or after ?since= (RFC 3339, required); ?all=true replays delivered ones
// too.
func (s *Server) handleReplayWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	q := r.URL.Query()
	since, err := time.Parse(time.RFC3339, q.Get("since"))
	if err != nil {
		s.writeError(w, r, meter.Invalid("since", "must be an RFC 3339 time, e.g. 2026-03-01T00:00:00Z"))
		return
	}
	all, _ := strconv.ParseBool(q.Get("all"))
	n, err := s.webhooks.Replay(r.Context(), mux.Vars(r)["id"], since, all)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": n})
}
