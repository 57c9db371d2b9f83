package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// The analytics and history tests run on their own small harness (names
// start with "an"), so they do not depend on other tests' helpers.

const anAdminToken = "mat_analytics-admin-token-5d1e7c"

// anOptions shape an anServer; zero values are the production defaults.
type anOptions struct {
	plans    string // plans file text ("" = default plans)
	async    bool
	patterns []string
	path     string // ledger file ("" = a fresh one in a temp dir)
}

// anServer is the real API over a real meter and bbolt ledger, served
// on 127.0.0.1.
type anServer struct {
	tb     testing.TB
	clock  *testClock
	ledger *ledger.Ledger
	meter  *meter.Meter
	http   *httptest.Server
	client *http.Client
}

func mustOpenAnServer(tb testing.TB, start time.Time, o anOptions) *anServer {
	tb.Helper()
	if o.path == "" {
		o.path = filepath.Join(tb.TempDir(), "meter.db")
	}
	l, err := ledger.Open(o.path, ledger.Options{NodeID: "an1", QueueSize: 1 << 18})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	plans := meter.DefaultPlans()
	if o.plans != "" {
		if plans, err = meter.ParsePlans([]byte(o.plans)); err != nil {
			tb.Fatal(err)
		}
	}
	folder, err := meter.NewEndpointFolder(o.patterns)
	if err != nil {
		tb.Fatal(err)
	}
	clock := &testClock{now: start}
	m, err := meter.New(context.Background(), meter.Config{Store: l, Plans: plans, Now: clock.Now,
		Async: o.async, Folder: folder})
	if err != nil {
		tb.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{Meter: m, AdminToken: anAdminToken, Usage: l,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(api.Handler())
	tb.Cleanup(hs.Close)
	return &anServer{tb: tb, clock: clock, ledger: l, meter: m, http: hs,
		client: &http.Client{Timeout: 30 * time.Second}}
}

// send performs a request with the given credential: the admin token, an
// API key (sent as X-API-Key), or "" for none. Safe from any goroutine.
func (s *anServer) send(method, path, cred, body string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.http.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	switch {
	case cred == anAdminToken:
		req.Header.Set("Authorization", "Bearer "+cred)
	case cred != "":
		req.Header.Set("X-API-Key", cred)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// mustGet GETs path, requires want, and decodes the JSON body into v.
func (s *anServer) mustGet(path, cred string, want int, v any) []byte {
	s.tb.Helper()
	status, body, err := s.send(http.MethodGet, path, cred, "")
	if err != nil {
		s.tb.Fatalf("GET %s: %v", path, err)
	}
	if status != want {
		s.tb.Fatalf("GET %s: %d %s, want %d", path, status, body, want)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			s.tb.Fatalf("GET %s: decode %s: %v", path, body, err)
		}
	}
	return body
}

// mustAccount creates an account in the meter; the clock sets CreatedAt.
func (s *anServer) mustAccount(a meter.Account) {
	s.tb.Helper()
	if a.Name == "" {
		a.Name = "Account " + a.ID
	}
	if _, err := s.meter.CreateAccount(context.Background(), a); err != nil {
		s.tb.Fatalf("create %s: %v", a.ID, err)
	}
}

func (s *anServer) mustKey(account string) string {
	s.tb.Helper()
	_, key, err := s.meter.IssueKey(context.Background(), account)
	if err != nil {
		s.tb.Fatal(err)
	}
	return key
}

// track meters c at the clock's time, retrying while an async burst fills
// the ledger queue.
func (s *anServer) track(c meter.Call) meter.Result {
	s.tb.Helper()
	for try := 0; ; try++ {
		res, err := s.meter.Track(context.Background(), c)
		if errors.Is(err, meter.ErrOverloaded) && try < 10000 {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			s.tb.Fatalf("track %+v: %v", c, err)
		}
		return res
	}
}

// trackN makes n GET /v1/things calls for account.
func (s *anServer) trackN(account string, n int) {
	s.tb.Helper()
	for range n {
		s.track(meter.Call{AccountID: account, Endpoint: "/v1/things", Method: "GET", Status: 200})
	}
}

// flush waits until every event queued so far is committed: the writer
// commits in queue order, so a write queued now commits after them.
func (s *anServer) flush() {
	s.tb.Helper()
	if err := s.ledger.SetCursor(context.Background(), "test-flush", 0); err != nil {
		s.tb.Fatal(err)
	}
}

// anError is the JSON error body.
type anError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// mustErrorCode requires a JSON error with status and code.
func (s *anServer) mustErrorCode(path, cred string, status int, code string) {
	s.tb.Helper()
	var e anError
	s.mustGet(path, cred, status, &e)
	if e.Error.Code != code || e.Error.Message == "" {
		s.tb.Errorf("GET %s: error %+v, want code %q and a message", path, e, code)
	}
}

// anOverview is the body of GET /api/admin/analytics/overview.
type anOverview struct {
	Users    map[string]int64 `json:"users"`
	APICalls struct {
		Today           int64 `json:"today"`
		ThisMonth       int64 `json:"this_month"`
		DeniedToday     int64 `json:"denied_today"`
		DeniedThisMonth int64 `json:"denied_this_month"`
	} `json:"api_calls"`
	MRRCents            int64  `json:"mrr_cents"`
	OverageRevenueCents int64  `json:"overage_revenue_cents"`
	AccountsAtLimit     int64  `json:"accounts_at_limit"`
	AccountsNearLimit   int64  `json:"accounts_near_limit"`
	AccountsInOverage   int64  `json:"accounts_in_overage"`
	AsOf                string `json:"as_of"`
}

// TestAnalytics_Overview checks every figure of the overview against a
// hand computation on the default plans, including the business plan's
// example: a Pro account with 105,000 calls owes 5,000 × $0.001 = $5.00.
func TestAnalytics_Overview(t *testing.T) {
	s := mustOpenAnServer(t, time.Date(2026, 2, 27, 15, 0, 0, 0, time.UTC), anOptions{async: true})
	for _, a := range []meter.Account{
		{ID: "free-blocked", Plan: "free"}, {ID: "free-near", Plan: "free"}, {ID: "free-low", Plan: "free"},
		{ID: "pro-big", Plan: "pro"}, {ID: "pro-small", Plan: "pro"},
		{ID: "ent-a", Plan: "enterprise", MonthlyPriceCents: 50000},
		{ID: "ent-b", Plan: "enterprise", MonthlyPriceCents: 120000},
	} {
		s.mustAccount(a)
	}
	s.trackN("free-low", 10)  // Feb 27: last month, outside every figure
	s.trackN("pro-big", 3000) // Feb 27: last month's overage-free calls
	s.clock.Set(time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC))
	s.trackN("pro-big", 100000)
	s.clock.Set(time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC))
	s.trackN("free-blocked", 1001) // 1,000 allowed, then one denied
	s.clock.Set(time.Date(2026, 3, 9, 8, 0, 0, 0, time.UTC))
	s.trackN("pro-small", 2000)
	s.clock.Set(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) // today
	s.trackN("pro-big", 5000)
	s.trackN("free-near", 800)
	s.trackN("free-low", 5)
	s.trackN("ent-a", 30)
	s.clock.Set(time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC))
	s.flush()

	var got anOverview
	body := s.mustGet("/api/admin/analytics/overview", anAdminToken, http.StatusOK, &got)
	checkFields(t, body, "users", "api_calls", "mrr_cents", "overage_revenue_cents",
		"accounts_at_limit", "accounts_near_limit", "accounts_in_overage", "as_of")
	if want := map[string]int64{"total": 7, "free": 3, "pro": 2, "enterprise": 2}; fmt.Sprint(got.Users) != fmt.Sprint(want) {
		t.Errorf("users %v, want %v", got.Users, want)
	}
	calls := got.APICalls
	// Today: 5,000 + 800 + 5 + 30. This month: today plus 100,000
	// (Mar 3), 1,000 (Mar 5) and 2,000 (Mar 9); the 1,001st call on Mar 5
	// was denied.
	if calls.Today != 5835 || calls.ThisMonth != 108835 || calls.DeniedToday != 0 || calls.DeniedThisMonth != 1 {
		t.Errorf("api_calls %+v, want today 5835, this month 108835, 1 denied", calls)
	}
	if want := int64(2*2900 + 50000 + 120000); got.MRRCents != want {
		t.Errorf("mrr_cents %d, want %d (29 × 2 Pro + the enterprise prices)", got.MRRCents, want)
	}
	if got.OverageRevenueCents != 500 {
		t.Errorf("overage_revenue_cents %d, want 500 (105,000 calls on Pro)", got.OverageRevenueCents)
	}
	// At the limit: free-blocked. Near it (>= 80 %): free-blocked (100 %),
	// free-near (80 %), pro-big (105 %); pro-small is at 2 %.
	if got.AccountsAtLimit != 1 || got.AccountsNearLimit != 3 || got.AccountsInOverage != 1 {
		t.Errorf("at limit %d, near %d, in overage %d; want 1, 3, 1",
			got.AccountsAtLimit, got.AccountsNearLimit, got.AccountsInOverage)
	}
	if got.AsOf != "2026-03-10T23:59:59Z" {
		t.Errorf("as_of %q", got.AsOf)
	}
	// The overview agrees with the ledger's own counter.
	c, err := s.ledger.Counter(context.Background(), "pro-big", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || c.Calls != 105000 || c.Overage != 5000 {
		t.Errorf("pro-big counter %+v, %v", c, err)
	}

	t.Run("NewMonth", func(t *testing.T) {
		s.clock.Set(time.Date(2026, 4, 1, 0, 0, 1, 0, time.UTC))
		var o anOverview
		s.mustGet("/api/admin/analytics/overview", anAdminToken, http.StatusOK, &o)
		if o.APICalls.Today != 0 || o.APICalls.ThisMonth != 0 || o.OverageRevenueCents != 0 ||
			o.AccountsAtLimit != 0 || o.AccountsNearLimit != 0 || o.MRRCents != got.MRRCents {
			t.Errorf("April 1: %+v, want zero usage and the same MRR", o)
		}
	})
	t.Run("Auth", func(t *testing.T) {
		s.mustErrorCode("/api/admin/analytics/overview", "", http.StatusUnauthorized, "unauthorized")
		s.mustErrorCode("/api/admin/analytics/overview", s.mustKey("ent-a"), http.StatusUnauthorized, "unauthorized")
	})
}

// checkFields requires a JSON object to have at least the named members.
func checkFields(tb testing.TB, body []byte, names ...string) {
	tb.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		tb.Fatalf("decode %s: %v", body, err)
	}
	for _, n := range names {
		if _, ok := obj[n]; !ok {
			tb.Errorf("missing field %q in %s", n, body)
		}
	}
}

// anUser is one row of GET /api/admin/analytics/users.
type anUser struct {
	AccountID        string  `json:"account_id"`
	Name             string  `json:"name"`
	Email            string  `json:"email"`
	Plan             string  `json:"plan"`
	APICalls         int64   `json:"api_calls"`
	Limit            *int64  `json:"limit"`
	Remaining        *int64  `json:"remaining"`
	UsagePercentage  float64 `json:"usage_percentage"`
	OverageCalls     int64   `json:"overage_calls"`
	OverageCostCents int64   `json:"overage_cost_cents"`
	DeniedCalls      int64   `json:"denied_calls"`
	LastCallAt       *string `json:"last_call_at"`
	CreatedAt        string  `json:"created_at"`
	ratio            float64 // usage as an exact fraction, for expected orders
	createdAt        time.Time
}

type anUsersPage struct {
	Users      []anUser `json:"users"`
	NextCursor *string  `json:"next_cursor"`
}

// anUsersPlans keep the Pro pricing with a 100-call limit.
const anUsersPlans = "plans:\n  pro: {limit: 100, overage_micros: 1000, monthly_price_cents: 2900}\n  free: {limit: 20, hard: true}\n"

// mustUsersFixture creates accounts with known calls, names and creation
// times, ties included, and returns what each should list as.
func mustUsersFixture(s *anServer) map[string]anUser {
	specs := []struct {
		id, name, plan string
		calls          int
	}{
		{"c01", "Umbrella", "free", 5}, {"c02", "acme", "pro", 150}, {"c03", "Initech", "enterprise", 70},
		{"c04", "Initech", "pro", 0}, {"c05", "Globex", "free", 25}, {"c06", "Hooli", "pro", 20},
		{"c07", "Stark", "free", 20}, {"c08", "Wayne", "pro", 4}, {"c09", "Cyberdyne", "enterprise", 0},
		{"c10", "Tyrell", "free", 1},
	}
	limits := map[string]int64{"free": 20, "pro": 100}
	want := map[string]anUser{}
	for i, sp := range specs {
		if i%3 != 2 { // some accounts share a creation time
			s.clock.Advance(time.Minute)
		}
		s.mustAccount(meter.Account{ID: sp.id, Name: sp.name, Email: sp.id + "@example.com", Plan: sp.plan,
			MonthlyPriceCents: 10000})
		s.trackN(sp.id, sp.calls)
		u := anUser{AccountID: sp.id, Name: sp.name, Plan: sp.plan, APICalls: int64(min(sp.calls, 20)), createdAt: s.clock.Now()}
		if sp.plan != "free" {
			u.APICalls = int64(sp.calls)
		}
		if l := limits[sp.plan]; l > 0 && u.APICalls > 0 {
			u.ratio = float64(u.APICalls) / float64(l)
		}
		want[sp.id] = u
	}
	return want
}

func anExpectedOrder(users map[string]anUser, by string, desc bool) []string {
	var list []anUser
	for _, u := range users {
		list = append(list, u)
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if desc {
			a, b = b, a
		}
		switch {
		case by == "usage" && a.ratio != b.ratio:
			return a.ratio < b.ratio
		case by == "calls" && a.APICalls != b.APICalls:
			return a.APICalls < b.APICalls
		case by == "name" && a.Name != b.Name:
			return a.Name < b.Name
		case by == "created" && !a.createdAt.Equal(b.createdAt):
			return a.createdAt.Before(b.createdAt)
		}
		return a.AccountID < b.AccountID
	})
	ids := make([]string, len(list))
	for i, u := range list {
		ids[i] = u.AccountID
	}
	return ids
}

// listUsers pages through /api/admin/analytics/users with the query q
// (without cursor), calling between after each page but the last.
func (s *anServer) listUsers(q url.Values, between func()) []anUser {
	s.tb.Helper()
	var out []anUser
	for page := 0; ; page++ {
		if page > 10000 {
			s.tb.Fatal("listing does not end")
		}
		var p anUsersPage
		s.mustGet("/api/admin/analytics/users?"+q.Encode(), anAdminToken, http.StatusOK, &p)
		out = append(out, p.Users...)
		if p.NextCursor == nil {
			return out
		}
		if *p.NextCursor == "" {
			s.tb.Fatal("empty next_cursor; want null on the last page")
		}
		q.Set("cursor", *p.NextCursor)
		between()
	}
}

func idsOf(users []anUser) []string {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.AccountID
	}
	return ids
}

func TestAnalytics_Users(t *testing.T) {
	s := mustOpenAnServer(t, time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), anOptions{plans: anUsersPlans, async: true})
	want := mustUsersFixture(s)
	for _, by := range []string{"", "usage", "calls", "name", "created"} {
		for _, order := range []string{"", "asc", "desc"} {
			for _, limit := range []string{"", "1", "3", "500"} {
				q := url.Values{}
				for k, v := range map[string]string{"sort": by, "order": order, "limit": limit} {
					if v != "" {
						q.Set(k, v)
					}
				}
				t.Run(q.Encode(), func(t *testing.T) {
					sortBy, desc := by, order == "desc"
					if sortBy == "" {
						sortBy = "usage"
					}
					if order == "" {
						desc = sortBy == "usage" || sortBy == "calls"
					}
					got := idsOf(s.listUsers(q, func() {}))
					if exp := anExpectedOrder(want, sortBy, desc); !slices.Equal(got, exp) {
						t.Errorf("order\n got %v\nwant %v", got, exp)
					}
				})
			}
		}
	}
	t.Run("PlanFilter", func(t *testing.T) {
		got := idsOf(s.listUsers(url.Values{"plan": {"pro"}, "sort": {"calls"}, "limit": {"2"}}, func() {}))
		if exp := []string{"c02", "c06", "c08", "c04"}; !slices.Equal(got, exp) {
			t.Errorf("pro accounts by calls: %v, want %v", got, exp)
		}
	})
	t.Run("Fields", func(t *testing.T) {
		body := s.mustGet("/api/admin/analytics/users?sort=calls&limit=1", anAdminToken, http.StatusOK, nil)
		checkFields(t, body, "users", "next_cursor")
		var raw struct {
			Users []json.RawMessage `json:"users"`
		}
		if err := json.Unmarshal(body, &raw); err != nil || len(raw.Users) != 1 {
			t.Fatalf("decode %s: %v", body, err)
		}
		checkFields(t, raw.Users[0], "account_id", "name", "email", "plan", "api_calls", "limit", "remaining",
			"usage_percentage", "overage_calls", "overage_cost_cents", "last_call_at")
		byID := map[string]anUser{}
		for _, u := range s.listUsers(url.Values{"limit": {"500"}}, func() {}) {
			byID[u.AccountID] = u
		}
		pro, ent, idle, free := byID["c02"], byID["c03"], byID["c04"], byID["c05"]
		if pro.APICalls != 150 || *pro.Limit != 100 || *pro.Remaining != 0 || pro.UsagePercentage != 150 ||
			pro.OverageCalls != 50 || pro.OverageCostCents != 5 || pro.LastCallAt == nil || pro.Email != "c02@example.com" {
			t.Errorf("pro account: %+v", pro)
		}
		if ent.Limit != nil || ent.Remaining != nil || ent.APICalls != 70 || ent.UsagePercentage != 0 {
			t.Errorf("enterprise account: %+v, want null limit and remaining", ent)
		}
		if idle.LastCallAt != nil || idle.APICalls != 0 || *idle.Remaining != 100 {
			t.Errorf("idle account: %+v, want null last_call_at", idle)
		}
		if free.APICalls != 20 || free.DeniedCalls != 5 || *free.Remaining != 0 || free.UsagePercentage != 100 {
			t.Errorf("blocked free account: %+v", free)
		}
	})
}

func TestAnalytics_Users_BadParams(t *testing.T) {
	s := mustOpenAnServer(t, time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), anOptions{})
	for _, id := range []string{"a", "b", "c"} {
		s.mustAccount(meter.Account{ID: id, Plan: "free"})
	}
	var p anUsersPage
	s.mustGet("/api/admin/analytics/users?sort=name&limit=1", anAdminToken, http.StatusOK, &p)
	if p.NextCursor == nil {
		t.Fatal("no cursor after the first of three accounts")
	}
	cursor := url.QueryEscape(*p.NextCursor)
	for _, q := range []string{
		"sort=revenue", "sort=USAGE", "order=up", "order=", "limit=0", "limit=501", "limit=-3", "limit=abc",
		"limit=1.5", "limit=99999999999999999999", "plan=gold", "cursor=not-a-cursor", "cursor=%00%01",
		"sort=created&limit=1&cursor=" + cursor, "sort=name&order=desc&limit=1&cursor=" + cursor,
		"sort=name&plan=free&limit=1&cursor=" + cursor,
	} {
		t.Run(q, func(t *testing.T) {
			if q == "order=" {
				// An empty order is the default, not an error.
				s.mustGet("/api/admin/analytics/users?"+q, anAdminToken, http.StatusOK, nil)
				return
			}
			s.mustErrorCode("/api/admin/analytics/users?"+q, anAdminToken, http.StatusBadRequest, "invalid_request")
		})
	}
	t.Run("CursorContinues", func(t *testing.T) {
		var next anUsersPage
		s.mustGet("/api/admin/analytics/users?sort=name&limit=1&cursor="+cursor, anAdminToken, http.StatusOK, &next)
		if len(next.Users) != 1 || next.Users[0].AccountID != "b" {
			t.Errorf("second page %+v, want account b", next)
		}
	})
	t.Run("Auth", func(t *testing.T) {
		s.mustErrorCode("/api/admin/analytics/users", "", http.StatusUnauthorized, "unauthorized")
	})
}

// TestAnalytics_Users_ConcurrentAdds pages through the accounts while new
// ones are created over the API: every account that existed before the
// first page is listed exactly once, and none twice.
func TestAnalytics_Users_ConcurrentAdds(t *testing.T) {
	s := mustOpenAnServer(t, time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), anOptions{async: true})
	const before = 60
	for i := range before {
		s.clock.Advance(time.Second)
		id := fmt.Sprintf("old-%02d", (i*7)%before)
		s.mustAccount(meter.Account{ID: id, Name: fmt.Sprintf("n%02d", (i*11)%before), Plan: "free"})
		s.trackN(id, i%9)
	}
	for _, by := range []string{"usage", "calls", "name", "created"} {
		for _, order := range []string{"asc", "desc"} {
			t.Run(by+"_"+order, func(t *testing.T) {
				created := make(chan struct{})
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Go(func() { s.createAccounts(t, by+order, stop, created) })
				between := func() { // one account is created between any two pages
					select {
					case <-created:
					case <-time.After(20 * time.Second):
						t.Fatal("no account created")
					}
				}
				got := idsOf(s.listUsers(url.Values{"sort": {by}, "order": {order}, "limit": {"4"}}, between))
				close(stop)
				wg.Wait()
				seen, old := map[string]bool{}, 0
				for _, id := range got {
					if seen[id] {
						t.Errorf("%s listed twice", id)
					}
					seen[id] = true
					if strings.HasPrefix(id, "old-") {
						old++
					}
				}
				if old != before {
					t.Errorf("listed %d of the %d accounts that existed before the first page", old, before)
				}
			})
		}
	}
}

// createAccounts creates accounts over the admin API, with ids, names and
// creation times spread over every sort order, until stop is closed; it
// signals each creation on created.
func (s *anServer) createAccounts(tb testing.TB, tag string, stop, created chan struct{}) {
	for i := 0; ; i++ {
		s.clock.Advance(time.Second)
		body := fmt.Sprintf(`{"id":"%s-%03d","name":"n%02d","plan":"free"}`, []string{"aaa", "zzz", "new"}[i%3]+tag, i, (i*13)%70)
		status, resp, err := s.send(http.MethodPost, "/api/admin/accounts", anAdminToken, body)
		if err != nil || status != http.StatusCreated {
			tb.Errorf("create account: %d %s %v", status, resp, err)
			return
		}
		select {
		case created <- struct{}{}:
		case <-stop:
			return
		}
	}
}
