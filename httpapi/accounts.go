package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/meterd/meterd/meter"
)

// The account lifecycle routes: paged listing, suspend, resume, delete.
// Delete keeps the account's record, history and billing (see
// meter.DeleteAccount) and answers the deleted account.
func (s *Server) registerAccountRoutes(r *mux.Router) {
	r.HandleFunc("/api/admin/accounts", s.requireAdmin(s.handleListAccounts)).Methods(http.MethodGet)
	r.HandleFunc("/api/admin/accounts/{id}", s.requireAdmin(s.handleDeleteAccount)).Methods(http.MethodDelete)
	r.HandleFunc("/api/admin/accounts/{id}/suspend", s.requireAdmin(s.handleSuspendAccount)).Methods(http.MethodPost)
	r.HandleFunc("/api/admin/accounts/{id}/resume", s.requireAdmin(s.handleResumeAccount)).Methods(http.MethodPost)
}

// accountList is the body of GET /api/admin/accounts.
type accountList struct {
	Accounts   []accountResponse `json:"accounts"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

func (s *Server) handleListAccounts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.writeError(w, r, meter.Invalid("limit", "must be an integer"))
			return
		}
		limit = n
	}
	page, err := s.meter.ListAccounts(q.Get("cursor"), limit, q.Get("status"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := accountList{Accounts: make([]accountResponse, 0, len(page.Accounts)), NextCursor: page.Next}
	for _, a := range page.Accounts {
		out.Accounts = append(out.Accounts, s.accountResponse(a))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleSuspendAccount(w http.ResponseWriter, r *http.Request) {
	s.answerAccount(w, r)(s.meter.SuspendAccount(r.Context(), mux.Vars(r)["id"]))
}

func (s *Server) handleResumeAccount(w http.ResponseWriter, r *http.Request) {
	s.answerAccount(w, r)(s.meter.ResumeAccount(r.Context(), mux.Vars(r)["id"]))
}

func (s *Server) handleDeleteAccount(w http.ResponseWriter, r *http.Request) {
	s.answerAccount(w, r)(s.meter.DeleteAccount(r.Context(), mux.Vars(r)["id"]))
}

// answerAccount returns a function answering an account or an error.
func (s *Server) answerAccount(w http.ResponseWriter, r *http.Request) func(meter.Account, error) {
	return func(a meter.Account, err error) {
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.accountResponse(a))
	}
}

// blockedError is the answer to a call of a suspended or deleted account.
func blockedError(res meter.Result) *apiError {
	if res.AccountStatus == meter.StatusDeleted {
		return newError(http.StatusForbidden, "account_deleted", "this account has been deleted")
	}
	return newError(http.StatusForbidden, "account_suspended", "this account is suspended; contact the API provider")
}
