package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/meterd/meterd/meter"
)

func (s *Server) registerAnalyticsRoutes(r *mux.Router) {
	r.HandleFunc("/api/admin/analytics/overview", s.requireAdmin(s.handleAnalyticsOverview)).Methods(http.MethodGet)
	r.HandleFunc("/api/admin/analytics/users", s.requireAdmin(s.handleAnalyticsUsers)).Methods(http.MethodGet)
}

// overviewBody is the body of GET /api/admin/analytics/overview.
type overviewBody struct {
	// Users counts accounts per configured plan, plus "total".
	Users               map[string]int64 `json:"users"`
	APICalls            callTotals       `json:"api_calls"`
	MRRCents            int64            `json:"mrr_cents"`
	OverageRevenueCents int64            `json:"overage_revenue_cents"`
	// OverageBilledCents is the part of it already charged to Stripe
	// (done billing intents of the current periods); the rest is still to
	// bill. Omitted when billing is not wired.
	OverageBilledCents   *int64 `json:"overage_billed_cents,omitempty"`
	OverageUnbilledCents *int64 `json:"overage_unbilled_cents,omitempty"`
	AccountsAtLimit      int64  `json:"accounts_at_limit"`
	AccountsNearLimit    int64  `json:"accounts_near_limit"`
	AccountsInOverage    int64  `json:"accounts_in_overage"`
	AsOf                 string `json:"as_of"`
}

// callTotals are every account's calls in the UTC calendar day and month,
// from the ledger's running daily totals.
type callTotals struct {
	Today           int64 `json:"today"`
	ThisMonth       int64 `json:"this_month"`
	DeniedToday     int64 `json:"denied_today"`
	DeniedThisMonth int64 `json:"denied_this_month"`
}

func (s *Server) handleAnalyticsOverview(w http.ResponseWriter, r *http.Request) {
	if s.usage == nil {
		s.writeError(w, r, errNotFound)
		return
	}
	o := s.meter.Overview()
	calls, err := s.callTotals(r, o.At)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	users := make(map[string]int64, len(o.Users)+1)
	for name, n := range o.Users {
		users[name] = n
	}
	users["total"] = o.Total
	body := overviewBody{Users: users, APICalls: calls, MRRCents: o.MRRCents,
		OverageRevenueCents: o.OverageRevenueCents, AccountsAtLimit: o.AtLimit,
		AccountsNearLimit: o.NearLimit, AccountsInOverage: o.InOverage, AsOf: o.At.Format(time.RFC3339)}
	if err := s.addBilled(r, &body, o.At); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// BilledReader lists billing intents by period start (the ledger
// implements it).
type BilledReader interface {
	BillingIntents(ctx context.Context, from, to time.Time) ([]meter.BillingIntent, error)
}

// addBilled splits the overage revenue into billed and unbilled using the
// done intents of periods that are still open at now.
func (s *Server) addBilled(r *http.Request, body *overviewBody, now time.Time) error {
	if s.billed == nil {
		return nil
	}
	// Periods are at most a month long, so every open one started within
	// the last 31 days.
	intents, err := s.billed.BillingIntents(r.Context(), now.AddDate(0, 0, -32), now.Add(time.Second))
	if err != nil {
		return err
	}
	var billed int64
	for _, it := range intents {
		if it.Status == meter.IntentDone && it.PeriodEnd.After(now) {
			billed += it.AmountCents
		}
	}
	unbilled := max(body.OverageRevenueCents-billed, 0)
	body.OverageBilledCents, body.OverageUnbilledCents = &billed, &unbilled
	return nil
}

// callTotals sums the ledger's all-account daily totals over the calendar
// month up to today: at most 31 records, whatever the number of accounts.
func (s *Server) callTotals(r *http.Request, now time.Time) (callTotals, error) {
	today := meter.DayOf(now)
	month := today.AddDate(0, 0, 1-today.Day())
	days, err := s.usage.DailyUsage(r.Context(), "", month, today)
	if err != nil {
		return callTotals{}, err
	}
	var t callTotals
	for _, d := range days {
		t.ThisMonth += d.Calls
		t.DeniedThisMonth += d.Denied
		if d.Day.Equal(today) {
			t.Today, t.DeniedToday = d.Calls, d.Denied
		}
	}
	return t, nil
}

// userRow is one account of GET /api/admin/analytics/users: its current
// usage (the fields of /api/usage/current) with who it is.
type userRow struct {
	currentUsage
	Name      string `json:"name"`
	Email     string `json:"email"`
	CreatedAt string `json:"created_at"`
}

func newUserRow(q meter.Quota) userRow {
	return userRow{currentUsage: newCurrentUsage(q), Name: q.Account.Name, Email: q.Account.Email,
		CreatedAt: q.Account.CreatedAt.Format(time.RFC3339Nano)}
}

// usersBody is the body of GET /api/admin/analytics/users; NextCursor is
// null on the last page.
type usersBody struct {
	Users      []userRow `json:"users"`
	NextCursor *string   `json:"next_cursor"`
}

func (s *Server) handleAnalyticsUsers(w http.ResponseWriter, r *http.Request) {
	q, err := usersQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.meter.ListUsers(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := usersBody{Users: make([]userRow, 0, len(page.Users))}
	for _, u := range page.Users {
		out.Users = append(out.Users, newUserRow(u))
	}
	if page.NextCursor != "" {
		out.NextCursor = &page.NextCursor
	}
	writeJSON(w, http.StatusOK, out)
}

// usersQuery reads ?plan=&sort=&order=&limit=&cursor=&q=; the meter checks
// the values, this only parses the limit.
func usersQuery(r *http.Request) (meter.UsersQuery, error) {
	v := r.URL.Query()
	q := meter.UsersQuery{Plan: v.Get("plan"), Sort: meter.UserSort(v.Get("sort")),
		Order: v.Get("order"), Cursor: v.Get("cursor"), Search: v.Get("q")}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, meter.Invalid("limit", "must be a whole number from 1 to %d", meter.MaxUsersLimit)
		}
		q.Limit = n
	}
	return q, nil
}
