package httpapi

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/mux"
	"github.com/meterd/meterd/meter"
)

// The endpoints the web console needs beyond the JSON API every client
// uses: calls per day by plan, system health, portal tokens and CORS
// preflights. The console's pages themselves are mounted with
// RegisterConsole.

func (s *Server) registerConsoleRoutes(r *mux.Router) {
	r.HandleFunc("/api/admin/analytics/history", s.requireAdmin(s.handleAnalyticsHistory)).Methods(http.MethodGet)
	r.HandleFunc("/api/admin/health", s.requireAdmin(s.handleAdminHealth)).Methods(http.MethodGet)
	r.HandleFunc("/api/admin/accounts/{id}/portal-token", s.requireAdmin(s.handlePortalToken)).Methods(http.MethodPost)
	for _, what := range []string{"current", "history", "endpoints"} {
		r.HandleFunc(usagePrefix+what, s.handleUsagePreflight).Methods(http.MethodOptions)
	}
}

// RegisterConsole serves the web console h under /ui/ (GET and HEAD) and
// redirects / to it. Call it once, after New.
func (s *Server) RegisterConsole(h http.Handler) {
	s.router.PathPrefix("/ui/").Handler(h).Methods(http.MethodGet, http.MethodHead)
	s.router.Handle("/ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently)).Methods(http.MethodGet, http.MethodHead)
	s.router.Handle("/", http.RedirectHandler("/ui/", http.StatusFound)).Methods(http.MethodGet, http.MethodHead)
}

// PlanUsageReader answers calls per day per plan from running per-plan
// daily totals (the ledger implements it).
type PlanUsageReader interface {
	PlanDailyUsage(ctx context.Context, plans []string, from, to time.Time) (map[string][]meter.DailyUsage, error)
}

// historyBody is the body of GET /api/admin/analytics/history: columns
// ready for a chart. Plans[p][i] counts the allowed calls made on
// Dates[i] by accounts on plan p when each call was decided; Other is what
// the all-account totals hold beyond the plans (calls recorded before
// per-plan totals existed), so the columns always add up to Total.
type historyBody struct {
	Days   int                `json:"days"`
	Dates  []string           `json:"dates"`
	Total  []int64            `json:"total"`
	Denied []int64            `json:"denied"`
	Plans  map[string][]int64 `json:"plans"`
	Order  []string           `json:"plan_order"`
	Other  []int64            `json:"other"`
}

func (s *Server) handleAnalyticsHistory(w http.ResponseWriter, r *http.Request) {
	pu, ok := s.usage.(PlanUsageReader)
	if !ok {
		s.writeError(w, r, errNotFound)
		return
	}
	days, err := daysParam(r, 30)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	from, to := s.dayRange(days)
	totals, err := s.usage.DailyUsage(r.Context(), "", from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	names := s.meter.Plans().Names()
	byPlan, err := pu.PlanDailyUsage(r.Context(), names, from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newHistoryBody(days, names, totals, byPlan))
}

func newHistoryBody(days int, names []string, totals []meter.DailyUsage, byPlan map[string][]meter.DailyUsage) historyBody {
	b := historyBody{Days: days, Plans: make(map[string][]int64, len(names)), Order: slices.Clone(names)}
	for i, d := range totals {
		b.Dates = append(b.Dates, d.Day.Format(time.DateOnly))
		b.Total = append(b.Total, d.Calls)
		b.Denied = append(b.Denied, d.Denied)
		rest := d.Calls
		for _, p := range names {
			var n int64
			if i < len(byPlan[p]) {
				n = byPlan[p][i].Calls
			}
			b.Plans[p] = append(b.Plans[p], n)
			rest -= n
		}
		b.Other = append(b.Other, max(rest, 0))
	}
	return b
}

// BillingRunReporter is a Biller that remembers its latest real run
// (export/stripe's Service does).
type BillingRunReporter interface {
	LastRun() (rep meter.BillingReport, errText string, ok bool)
}

// healthBody is the body of GET /api/admin/health: every readiness check
// with its detail (the ledger queue, the Postgres export backlog and lag)
// and the billing state.
type healthBody struct {
	Ready   bool           `json:"ready"`
	Checks  map[string]any `json:"checks"`
	Billing billingHealth  `json:"billing"`
	AsOf    string         `json:"as_of"`
}

type billingHealth struct {
	Enabled bool                 `json:"enabled"`
	LastRun *meter.BillingReport `json:"last_run"`
	LastOK  *bool                `json:"last_run_ok"`
	LastErr string               `json:"last_run_error,omitempty"`
}

func (s *Server) handleAdminHealth(w http.ResponseWriter, r *http.Request) {
	body := healthBody{Ready: true, Checks: map[string]any{}, AsOf: s.meter.Now().UTC().Format(time.RFC3339)}
	for name, check := range s.ready {
		ok, detail := check(r.Context())
		body.Checks[name] = map[string]any{"ok": ok, "detail": detail}
		body.Ready = body.Ready && ok
	}
	body.Billing.Enabled = s.biller != nil
	if rr, ok := s.biller.(BillingRunReporter); ok {
		if rep, errText, ran := rr.LastRun(); ran {
			good := errText == "" && rep.OK()
			body.Billing.LastRun, body.Billing.LastOK, body.Billing.LastErr = &rep, &good, errText
		}
	}
	writeJSON(w, http.StatusOK, body)
}
