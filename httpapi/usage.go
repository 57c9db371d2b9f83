package httpapi

import (
	"context"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/meterd/meterd/meter"
)

// UsageReader answers usage queries from stored aggregates (the ledger
// implements it). An empty account means all accounts.
type UsageReader interface {
	DailyUsage(ctx context.Context, account string, from, to time.Time) ([]meter.DailyUsage, error)
	EndpointUsage(ctx context.Context, account string, from, to time.Time) ([]meter.EndpointUsage, error)
}

func (s *Server) registerUsageRoutes(r *mux.Router) {
	r.HandleFunc("/api/usage/current", s.handleUsageCurrent).Methods(http.MethodGet)
	r.HandleFunc("/api/usage/history", s.handleUsageHistory).Methods(http.MethodGet)
	r.HandleFunc("/api/usage/endpoints", s.handleUsageEndpoints).Methods(http.MethodGet)
}

var errForbidden = newError(http.StatusForbidden, "forbidden", "an API key may only read its own account's usage")

// usageAccount decides whose usage a request may read: the key's own
// account, or with the admin token any ?account_id=.
func (s *Server) usageAccount(r *http.Request) (string, error) {
	q := r.URL.Query().Get("account_id")
	if s.isAdmin(r) {
		if q == "" {
			return "", meter.Invalid("account_id", "is required with the admin token")
		}
		if _, err := s.meter.Account(q); err != nil {
			return "", err
		}
		return q, nil
	}
	if id, ok, err := s.portalAccount(r); ok {
		if err == nil && q != "" && q != id {
			err = errForbidden
		}
		return id, err
	}
	key := s.apiKeyFrom(r)
	if key == "" {
		return "", errUnauthorized
	}
	id, err := s.meter.AccountForKey(key)
	if err != nil {
		return "", err
	}
	if q != "" && q != id {
		return "", errForbidden
	}
	return id, nil
}

// currentUsage is the body of GET /api/usage/current.
type currentUsage struct {
	AccountID        string  `json:"account_id"`
	Plan             string  `json:"plan"`
	PeriodStart      string  `json:"period_start"`
	PeriodEnd        string  `json:"period_end"`
	APICalls         int64   `json:"api_calls"`
	Limit            *int64  `json:"limit"`
	Remaining        *int64  `json:"remaining"`
	OverageCalls     int64   `json:"overage_calls"`
	OverageCostCents int64   `json:"overage_cost_cents"`
	UsagePercentage  float64 `json:"usage_percentage"`
	DeniedCalls      int64   `json:"denied_calls"`
	LastCallAt       *string `json:"last_call_at"`
}

func newCurrentUsage(q meter.Quota) currentUsage {
	out := currentUsage{AccountID: q.Account.ID, Plan: q.Plan.Name,
		PeriodStart: q.Period.Start.Format(time.RFC3339), PeriodEnd: q.Period.End.Format(time.RFC3339),
		APICalls: q.Calls, OverageCalls: q.Overage, OverageCostCents: q.OverageCostCents(),
		UsagePercentage: q.UsagePercentage(), DeniedCalls: q.Denied}
	if !q.Plan.Unlimited() {
		limit, remaining := q.Plan.Limit, q.Remaining()
		out.Limit, out.Remaining = &limit, &remaining
	}
	if !q.LastCallAt.IsZero() {
		t := q.LastCallAt.Format(time.RFC3339Nano)
		out.LastCallAt = &t
	}
	return out
}

func (s *Server) handleUsageCurrent(w http.ResponseWriter, r *http.Request) {
	id, err := s.usageAccount(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q, err := s.meter.Quota(id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newCurrentUsage(q))
}

// daysParam parses ?days= (1..366, default def).
func daysParam(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("days")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 366 {
		return 0, meter.Invalid("days", "must be a whole number from 1 to 366")
	}
	return n, nil
}

// dayRange returns the first and last UTC day of an n-day window ending
// today.
func (s *Server) dayRange(n int) (time.Time, time.Time) {
	today := meter.DayOf(s.meter.Now())
	return today.AddDate(0, 0, -(n - 1)), today
}

type historyDay struct {
	Date         string `json:"date"`
	APICalls     int64  `json:"api_calls"`
	OverageCalls int64  `json:"overage_calls"`
	DeniedCalls  int64  `json:"denied_calls"`
	Errors       int64  `json:"errors"`
	ClientErrors int64  `json:"client_errors"`
}

func (s *Server) handleUsageHistory(w http.ResponseWriter, r *http.Request) {
	id, days, err := s.usageQuery(r, 30)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	from, to := s.dayRange(days)
	rows, err := s.usage.DailyUsage(r.Context(), id, from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]historyDay, 0, len(rows))
	for _, d := range rows {
		out = append(out, historyDay{Date: d.Day.Format(time.DateOnly), APICalls: d.Calls,
			OverageCalls: d.Overage, DeniedCalls: d.Denied, Errors: d.Errors, ClientErrors: d.ClientErrors})
	}
	writeJSON(w, http.StatusOK, map[string]any{"account_id": id, "days": out})
}

func (s *Server) usageQuery(r *http.Request, defDays int) (string, int, error) {
	if s.usage == nil {
		return "", 0, errNotFound
	}
	days, err := daysParam(r, defDays)
	if err != nil {
		return "", 0, err
	}
	id, err := s.usageAccount(r)
	return id, days, err
}

type endpointRow struct {
	Endpoint     string  `json:"endpoint"`
	Method       string  `json:"method"`
	APICalls     int64   `json:"api_calls"`
	Errors       int64   `json:"errors"`
	ClientErrors int64   `json:"client_errors"`
	DeniedCalls  int64   `json:"denied_calls"`
	AvgLatencyMS float64 `json:"avg_latency_ms"`
}

func (s *Server) handleUsageEndpoints(w http.ResponseWriter, r *http.Request) {
	id, days, err := s.usageQuery(r, 7)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	from, to := s.dayRange(days)
	rows, err := s.usage.EndpointUsage(r.Context(), id, from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Calls != rows[j].Calls {
			return rows[i].Calls > rows[j].Calls
		}
		return rows[i].Endpoint+rows[i].Method < rows[j].Endpoint+rows[j].Method
	})
	out := make([]endpointRow, 0, len(rows))
	for _, e := range rows {
		out = append(out, endpointRow{Endpoint: e.Endpoint, Method: e.Method, APICalls: e.Calls,
			Errors: e.Errors, ClientErrors: e.ClientErrors, DeniedCalls: e.Denied,
			AvgLatencyMS: math.Round(e.AvgLatencyMS()*1000) / 1000})
	}
	writeJSON(w, http.StatusOK, map[string]any{"account_id": id, "days": days, "endpoints": out})
}
