package httpapi

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/meterd/meterd/meter"
)

func (s *Server) registerAdminRoutes(r *mux.Router) {
	r.HandleFunc("/api/admin/accounts", s.requireAdmin(s.handleCreateAccount)).Methods(http.MethodPost)
	r.HandleFunc("/api/admin/accounts/{id}", s.requireAdmin(s.handleGetAccount)).Methods(http.MethodGet)
	r.HandleFunc("/api/admin/accounts/{id}", s.requireAdmin(s.handlePatchAccount)).Methods(http.MethodPatch)
	r.HandleFunc("/api/admin/accounts/{id}/pending-plan", s.requireAdmin(s.handleCancelPendingPlan)).Methods(http.MethodDelete)
	r.HandleFunc("/api/admin/accounts/{id}/keys", s.requireAdmin(s.handleIssueKey)).Methods(http.MethodPost)
	r.HandleFunc("/api/admin/keys/{id}", s.requireAdmin(s.handleRevokeKey)).Methods(http.MethodDelete)
}

// accountRequest is the body of POST /api/admin/accounts.
type accountRequest struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	Email             string     `json:"email"`
	Plan              string     `json:"plan"`
	StripeCustomerID  string     `json:"stripe_customer_id"`
	MonthlyPriceCents int64      `json:"monthly_price_cents"`
	BillingAnchor     *time.Time `json:"billing_anchor"`
}

// accountResponse is an account with its keys (never their plaintext).
type accountResponse struct {
	meter.Account
	Keys []meter.APIKey `json:"keys"`
}

func (s *Server) accountResponse(a meter.Account) accountResponse {
	keys := s.meter.KeysOf(a.ID)
	if keys == nil {
		keys = []meter.APIKey{}
	}
	return accountResponse{Account: a, Keys: keys}
}

func (s *Server) handleCreateAccount(w http.ResponseWriter, r *http.Request) {
	var req accountRequest
	if err := decodeJSON(w, r, &req, MaxBodyBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Name == "" {
		s.writeError(w, r, meter.Invalid("name", "is required"))
		return
	}
	a, err := s.meter.CreateAccount(r.Context(), meter.Account{ID: req.ID, Name: req.Name,
		Email: req.Email, Plan: req.Plan, StripeCustomerID: req.StripeCustomerID,
		MonthlyPriceCents: req.MonthlyPriceCents, BillingAnchor: req.BillingAnchor})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.accountResponse(a))
}

func (s *Server) handleGetAccount(w http.ResponseWriter, r *http.Request) {
	a, err := s.meter.Account(mux.Vars(r)["id"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.accountResponse(a))
}

// patchRequest lists what PATCH may change; absent fields stay as they are.
type patchRequest struct {
	Name              *string `json:"name"`
	Email             *string `json:"email"`
	Plan              *string `json:"plan"`
	StripeCustomerID  *string `json:"stripe_customer_id"`
	MonthlyPriceCents *int64  `json:"monthly_price_cents"`
	// Effective is "now" or "period_end" (the default: upgrades apply at
	// once, downgrades at the end of the period).
	Effective *string `json:"effective"`
	// CancelPending drops a scheduled plan change.
	CancelPending bool `json:"cancel_pending"`
}

func (s *Server) handlePatchAccount(w http.ResponseWriter, r *http.Request) {
	var req patchRequest
	if err := decodeJSON(w, r, &req, MaxBodyBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := s.meter.UpdateAccount(r.Context(), mux.Vars(r)["id"], meter.AccountPatch(req))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.accountResponse(a))
}

// handleCancelPendingPlan drops a scheduled plan change; the account is
// returned as it now stands.
func (s *Server) handleCancelPendingPlan(w http.ResponseWriter, r *http.Request) {
	a, err := s.meter.UpdateAccount(r.Context(), mux.Vars(r)["id"], meter.AccountPatch{CancelPending: true})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.accountResponse(a))
}

// issuedKey is the one response that ever carries a key's plaintext.
type issuedKey struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Key       string    `json:"key"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) handleIssueKey(w http.ResponseWriter, r *http.Request) {
	k, plaintext, err := s.meter.IssueKey(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, issuedKey{ID: k.ID, AccountID: k.AccountID, Key: plaintext,
		Prefix: k.Prefix, CreatedAt: k.CreatedAt})
}

func (s *Server) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	if err := s.meter.RevokeKey(r.Context(), mux.Vars(r)["id"]); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
