package httpapi_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/meterd/meterd/meter"
)

// anDay is one row of /api/usage/history.
type anDay struct {
	Date         string `json:"date"`
	APICalls     int64  `json:"api_calls"`
	OverageCalls int64  `json:"overage_calls"`
	DeniedCalls  int64  `json:"denied_calls"`
	Errors       int64  `json:"errors"`
	ClientErrors int64  `json:"client_errors"`
}

// anEndpoint is one row of /api/usage/endpoints.
type anEndpoint struct {
	Endpoint     string  `json:"endpoint"`
	Method       string  `json:"method"`
	APICalls     int64   `json:"api_calls"`
	Errors       int64   `json:"errors"`
	ClientErrors int64   `json:"client_errors"`
	DeniedCalls  int64   `json:"denied_calls"`
	AvgLatencyMS float64 `json:"avg_latency_ms"`
}

// anCurrent is the body of /api/usage/current.
type anCurrent struct {
	PeriodStart  string `json:"period_start"`
	APICalls     int64  `json:"api_calls"`
	OverageCalls int64  `json:"overage_calls"`
	DeniedCalls  int64  `json:"denied_calls"`
}

// historyPlans: a hard limit of 10 and a soft one of 30 at the Pro price,
// so forty days of a few calls a day cross both within each month.
const historyPlans = "plans:\n  free: {limit: 10, hard: true}\n  pro: {limit: 30, overage_micros: 1000, monthly_price_cents: 2900}\n"

// simCall is one call of the forty-day scenario.
type simCall struct {
	at       time.Time
	path     string // as the API saw it
	template string // what it must fold to
	method   string
	status   int
	latency  int64 // ms
}

// fortyDays returns the scenario: Jan 20 to Feb 28 2026 (today), across
// the January/February period boundary. Every seventh day has no calls;
// the others have 1 to 9, the first at 00:00:00 and the last at
// 23:59:59.999, with folding paths, errors and latencies.
func fortyDays() []simCall {
	paths := []struct{ path, template string }{
		{"/v1/users/%d", "/v1/users/{id}"},
		{"/v1/orders", "/v1/orders"},
		{"/v1/orders/%d/items/550e8400-e29b-41d4-a716-44665544%04d", "/v1/orders/{id}/items/{id}"},
		{"/v1/blobs/deadbeefcafe%04d?x=1", "/v1/blobs/{id}"},
	}
	first := time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)
	var calls []simCall
	for d := range 40 {
		if d%7 == 3 {
			continue
		}
		day, n := first.AddDate(0, 0, d), (d*5)%9+1
		for k := range n {
			at := day.Add(time.Duration(k) * time.Hour)
			if k == n-1 && n > 1 {
				at = day.Add(24*time.Hour - time.Millisecond)
			}
			p := paths[(d+k)%len(paths)]
			path := p.path
			switch p.template {
			case "/v1/users/{id}", "/v1/blobs/{id}":
				path = fmt.Sprintf(p.path, 1000+d*10+k)
			case "/v1/orders/{id}/items/{id}":
				path = fmt.Sprintf(p.path, 1000+d*10+k, d*10+k)
			}
			c := simCall{at: at, path: path, template: p.template, method: []string{"GET", "POST"}[k%2],
				status: 200, latency: int64(k%4+1) * 10}
			switch {
			case k%5 == 4:
				c.status = 503
			case k%7 == 6:
				c.status = 404
			}
			calls = append(calls, c)
		}
	}
	return calls
}

// simulate computes the expected figures of calls for an account on a
// calendar-month plan with the given limit: per day and per endpoint.
type simResult struct {
	days      map[string]*anDay
	endpoints map[string]*simEndpoint // by day, then template and method
}

type simEndpoint struct {
	row        anEndpoint
	latencySum int64
	day        time.Time
}

func simulate(calls []simCall, limit int64, hard bool) simResult {
	r := simResult{days: map[string]*anDay{}, endpoints: map[string]*simEndpoint{}}
	var period time.Time
	var used int64
	for _, c := range calls {
		if p := meter.PeriodAt(time.Time{}, c.at).Start; !p.Equal(period) {
			period, used = p, 0
		}
		date := c.at.Format(time.DateOnly)
		d := r.days[date]
		if d == nil {
			d = &anDay{Date: date}
			r.days[date] = d
		}
		key := date + " " + c.template + " " + c.method
		e := r.endpoints[key]
		if e == nil {
			e = &simEndpoint{row: anEndpoint{Endpoint: c.template, Method: c.method}, day: meter.DayOf(c.at)}
			r.endpoints[key] = e
		}
		if hard && used >= limit {
			d.DeniedCalls++
			e.row.DeniedCalls++
			continue
		}
		used++
		d.APICalls++
		e.row.APICalls++
		e.latencySum += c.latency * 1000
		if !hard && used > limit {
			d.OverageCalls++
		}
		switch {
		case c.status >= 500:
			d.Errors++
			e.row.Errors++
		case c.status >= 400:
			d.ClientErrors++
			e.row.ClientErrors++
		}
	}
	return r
}

// expectedHistory lists the n days ending on today, zero days included.
func (r simResult) expectedHistory(today time.Time, n int) []anDay {
	var out []anDay
	for i := n - 1; i >= 0; i-- {
		date := today.AddDate(0, 0, -i).Format(time.DateOnly)
		d := anDay{Date: date}
		if got := r.days[date]; got != nil {
			d = *got
		}
		out = append(out, d)
	}
	return out
}

// expectedEndpoints sums the n days ending on today per template and
// method, most calls first, then by endpoint and method.
func (r simResult) expectedEndpoints(today time.Time, n int) []anEndpoint {
	from := today.AddDate(0, 0, -(n - 1))
	sums := map[string]*simEndpoint{}
	for _, e := range r.endpoints {
		if e.day.Before(from) || e.day.After(today) {
			continue
		}
		k := e.row.Endpoint + "\x00" + e.row.Method
		s := sums[k]
		if s == nil {
			s = &simEndpoint{row: anEndpoint{Endpoint: e.row.Endpoint, Method: e.row.Method}}
			sums[k] = s
		}
		s.row.APICalls += e.row.APICalls
		s.row.Errors += e.row.Errors
		s.row.ClientErrors += e.row.ClientErrors
		s.row.DeniedCalls += e.row.DeniedCalls
		s.latencySum += e.latencySum
	}
	var out []anEndpoint
	for _, s := range sums {
		if s.row.APICalls > 0 {
			s.row.AvgLatencyMS = float64(s.latencySum) / float64(s.row.APICalls) / 1000
		}
		out = append(out, s.row)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].APICalls != out[j].APICalls {
			return out[i].APICalls > out[j].APICalls
		}
		return out[i].Endpoint+out[i].Method < out[j].Endpoint+out[j].Method
	})
	return out
}

// TestUsageHistory_FortyDays replays forty days of calls, across a month
// boundary, for a Pro and a Free account, and checks history, endpoints
// and current usage figure by figure.
func TestUsageHistory_FortyDays(t *testing.T) {
	calls := fortyDays()
	s := mustOpenAnServer(t, calls[0].at, anOptions{plans: historyPlans, async: true})
	s.mustAccount(meter.Account{ID: "acme", Plan: "pro"})
	s.mustAccount(meter.Account{ID: "tiny", Plan: "free"})
	key := s.mustKey("acme")
	for _, c := range calls {
		s.clock.Set(c.at)
		for _, account := range []string{"acme", "tiny"} {
			s.track(meter.Call{AccountID: account, Endpoint: c.path, Method: c.method, Status: c.status,
				LatencyMicros: c.latency * 1000})
		}
	}
	s.flush()
	today := time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)
	if got := meter.DayOf(s.clock.Now()); !got.Equal(today) {
		t.Fatalf("scenario ends on %v, want %v", got, today)
	}
	sims := map[string]simResult{"acme": simulate(calls, 30, false), "tiny": simulate(calls, 10, true)}
	creds := map[string]string{"acme": key, "tiny": anAdminToken}

	for account, sim := range sims {
		query := func(path string) string {
			if creds[account] == anAdminToken {
				return path + "&account_id=" + account
			}
			return path
		}
		t.Run(account+"/History", func(t *testing.T) {
			for _, n := range []int{1, 7, 30, 40, 45, 366} {
				var body struct {
					Days []anDay `json:"days"`
				}
				s.mustGet(query(fmt.Sprintf("/api/usage/history?days=%d", n)), creds[account], http.StatusOK, &body)
				checkHistory(t, n, body.Days, sim.expectedHistory(today, n))
			}
			var body struct {
				Days []anDay `json:"days"`
			}
			s.mustGet(query("/api/usage/history?x=1"), creds[account], http.StatusOK, &body)
			checkHistory(t, 30, body.Days, sim.expectedHistory(today, 30))
		})
		t.Run(account+"/Endpoints", func(t *testing.T) {
			for _, n := range []int{1, 7, 12, 40} {
				var body struct {
					Endpoints []anEndpoint `json:"endpoints"`
				}
				s.mustGet(query(fmt.Sprintf("/api/usage/endpoints?days=%d", n)), creds[account], http.StatusOK, &body)
				checkEndpoints(t, n, body.Endpoints, sim.expectedEndpoints(today, n))
			}
		})
		t.Run(account+"/CurrentAgreesWithHistory", func(t *testing.T) {
			checkPeriodAgreement(t, s, account, creds[account])
		})
	}
	t.Run("Totals", func(t *testing.T) {
		// The all-account daily totals are the sum of both accounts.
		days, err := s.ledger.DailyUsage(context.Background(), "", today.AddDate(0, 0, -39), today)
		if err != nil {
			t.Fatal(err)
		}
		a, f := sims["acme"].expectedHistory(today, 40), sims["tiny"].expectedHistory(today, 40)
		for i, d := range days {
			if d.Calls != a[i].APICalls+f[i].APICalls || d.Denied != a[i].DeniedCalls+f[i].DeniedCalls {
				t.Errorf("%s: total %+v, want %d calls and %d denied", a[i].Date, d.Usage,
					a[i].APICalls+f[i].APICalls, a[i].DeniedCalls+f[i].DeniedCalls)
			}
		}
	})
}

func checkHistory(tb testing.TB, n int, got, want []anDay) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("days=%d: %d entries, want %d", n, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			tb.Errorf("days=%d, entry %d: %+v, want %+v", n, i, got[i], want[i])
		}
	}
}

func checkEndpoints(tb testing.TB, n int, got, want []anEndpoint) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("days=%d: %d endpoints %+v, want %d %+v", n, len(got), got, len(want), want)
	}
	for i := range want {
		// The mean latency is reported to the microsecond.
		g, w := got[i], want[i]
		if math.Abs(g.AvgLatencyMS-w.AvgLatencyMS) > 0.001 {
			tb.Errorf("days=%d, row %d: avg_latency_ms %v, want %.6f", n, i, g.AvgLatencyMS, w.AvgLatencyMS)
		}
		g.AvgLatencyMS, w.AvgLatencyMS = 0, 0
		if g != w {
			tb.Errorf("days=%d, row %d: %+v, want %+v", n, i, got[i], want[i])
		}
	}
}

// checkPeriodAgreement: /api/usage/current, the sum of the history over the
// current period, and the ledger's counter give the same calls, overage
// and denials.
func checkPeriodAgreement(tb testing.TB, s *anServer, account, cred string) {
	tb.Helper()
	suffix := ""
	if cred == anAdminToken {
		suffix = "account_id=" + account
	}
	var cur anCurrent
	s.mustGet("/api/usage/current?"+suffix, cred, http.StatusOK, &cur)
	start, err := time.Parse(time.RFC3339, cur.PeriodStart)
	if err != nil {
		tb.Fatal(err)
	}
	n := int(meter.DayOf(s.clock.Now()).Sub(meter.DayOf(start))/(24*time.Hour)) + 1
	var body struct {
		Days []anDay `json:"days"`
	}
	s.mustGet(fmt.Sprintf("/api/usage/history?days=%d&%s", n, suffix), cred, http.StatusOK, &body)
	var sum anCurrent
	for _, d := range body.Days {
		sum.APICalls += d.APICalls
		sum.OverageCalls += d.OverageCalls
		sum.DeniedCalls += d.DeniedCalls
	}
	c, err := s.ledger.Counter(context.Background(), account, start)
	if err != nil {
		tb.Fatal(err)
	}
	counter := anCurrent{APICalls: c.Calls, OverageCalls: c.Overage, DeniedCalls: c.Denied}
	cur.PeriodStart = ""
	if cur != sum || cur != counter {
		tb.Errorf("%s at %v: current %+v, history of the period %+v, counter %+v",
			account, s.clock.Now(), cur, sum, counter)
	}
}

// TestUsageHistory_AgreesWithCounter checks current usage, history and the
// ledger counter after every step of a month boundary, in durable mode,
// for calendar-month and anchored accounts.
func TestUsageHistory_AgreesWithCounter(t *testing.T) {
	s := mustOpenAnServer(t, time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC), anOptions{plans: historyPlans})
	anchor := time.Date(2025, 12, 30, 0, 0, 0, 0, time.UTC) // periods start on the 30th (Feb 28 in February)
	s.mustAccount(meter.Account{ID: "pro", Plan: "pro"})
	s.mustAccount(meter.Account{ID: "free", Plan: "free"})
	s.mustAccount(meter.Account{ID: "anchored", Plan: "pro", BillingAnchor: &anchor})
	steps := []struct {
		at    time.Time
		calls int
	}{
		{time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC), 8},
		{time.Date(2026, 1, 30, 0, 0, 0, 0, time.UTC), 0}, // the anchored period turns
		{time.Date(2026, 1, 30, 0, 0, 0, 0, time.UTC), 9},
		{time.Date(2026, 1, 31, 23, 59, 59, 999e6, time.UTC), 20},
		{time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), 0}, // calendar periods turn
		{time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), 12},
		{time.Date(2026, 2, 3, 17, 0, 0, 0, time.UTC), 25},
	}
	for _, st := range steps {
		s.clock.Set(st.at)
		for range st.calls {
			for _, id := range []string{"pro", "free", "anchored"} {
				s.track(meter.Call{AccountID: id, Endpoint: "/v1/x", Method: "GET"})
			}
		}
		for _, id := range []string{"pro", "free", "anchored"} {
			checkPeriodAgreement(t, s, id, anAdminToken)
		}
	}
}

// TestUsageEndpoints_Folding: ids in paths fold to {id}, and a caller may
// pass the template itself; both land on one row.
func TestUsageEndpoints_Folding(t *testing.T) {
	s := mustOpenAnServer(t, time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), anOptions{patterns: []string{`usr_[a-z0-9]+`}})
	s.mustAccount(meter.Account{ID: "acct", Plan: "pro"})
	key := s.mustKey("acct")
	for _, path := range []string{
		"/v1/users/123/orders/550e8400-e29b-41d4-a716-446655440000",
		"/v1/users/{id}/orders/{id}",
		"/v1/users/9/orders/550E8400-E29B-41D4-A716-446655440000/",
		"/v1/users/usr_abc42/orders/0123456789abcdef0123?expand=items",
	} {
		body := fmt.Sprintf(`{"api_key":%q,"endpoint":%q,"method":"GET","status":200}`, key, path)
		if status, resp, err := s.send(http.MethodPost, "/v1/track", "", body); err != nil || status != http.StatusOK {
			t.Fatalf("track %s: %d %s %v", path, status, resp, err)
		}
	}
	var got struct {
		Endpoints []anEndpoint `json:"endpoints"`
	}
	s.mustGet("/api/usage/endpoints?days=1", key, http.StatusOK, &got)
	if len(got.Endpoints) != 1 || got.Endpoints[0].Endpoint != "/v1/users/{id}/orders/{id}" || got.Endpoints[0].APICalls != 4 {
		t.Errorf("endpoints %+v, want one row /v1/users/{id}/orders/{id} with 4 calls", got.Endpoints)
	}
}

// TestUsageEndpoints_Cap: 10,000 distinct paths that do not fold give at
// most 500 templates per account; the rest is counted under "other", and
// nothing is lost.
func TestUsageEndpoints_Cap(t *testing.T) {
	s := mustOpenAnServer(t, time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), anOptions{async: true})
	s.mustAccount(meter.Account{ID: "noisy", Plan: "enterprise"})
	s.mustAccount(meter.Account{ID: "quiet", Plan: "enterprise"})
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	var first string
	for len(seen) < 10000 {
		b := make([]byte, 10)
		for i := range b {
			b[i] = byte('g' + rng.IntN(20)) // g..z: never hex, never a number
		}
		path := "/v1/r/" + string(b)
		if seen[path] {
			continue
		}
		seen[path] = true
		if first == "" {
			first = path
		}
		s.track(meter.Call{AccountID: "noisy", Endpoint: path, Method: "GET"})
	}
	// A template admitted before the cap keeps its own row; the other
	// account has its own cap.
	s.track(meter.Call{AccountID: "noisy", Endpoint: first, Method: "GET"})
	s.track(meter.Call{AccountID: "quiet", Endpoint: "/v1/quiet", Method: "GET"})
	s.flush()

	var got struct {
		Endpoints []anEndpoint `json:"endpoints"`
	}
	s.mustGet("/api/usage/endpoints?days=1&account_id=noisy", anAdminToken, http.StatusOK, &got)
	rows := map[string]int64{}
	var total int64
	for _, e := range got.Endpoints {
		rows[e.Endpoint] += e.APICalls
		total += e.APICalls
	}
	if len(got.Endpoints) != 501 || rows[meter.OtherEndpoint] != 9500 || rows[first] != 2 || total != 10001 {
		t.Errorf("%d rows, %d calls under %q, %d under the first path, %d in all; want 501, 9500, 2, 10001",
			len(got.Endpoints), rows[meter.OtherEndpoint], meter.OtherEndpoint, rows[first], total)
	}
	s.mustGet("/api/usage/endpoints?days=1&account_id=quiet", anAdminToken, http.StatusOK, &got)
	if len(got.Endpoints) != 1 || got.Endpoints[0].Endpoint != "/v1/quiet" {
		t.Errorf("quiet account: %+v", got.Endpoints)
	}
}

// TestUsageHistory_Access: a key reads only its own account; the admin
// token reads any account with ?account_id=.
func TestUsageHistory_Access(t *testing.T) {
	s := mustOpenAnServer(t, time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), anOptions{})
	s.mustAccount(meter.Account{ID: "mine", Plan: "free"})
	s.mustAccount(meter.Account{ID: "theirs", Plan: "free"})
	key := s.mustKey("mine")
	for _, path := range []string{"/api/usage/history", "/api/usage/endpoints", "/api/usage/current"} {
		t.Run(path, func(t *testing.T) {
			s.mustGet(path, key, http.StatusOK, nil)
			s.mustGet(path+"?account_id=mine", key, http.StatusOK, nil)
			s.mustGet(path+"?account_id=theirs", anAdminToken, http.StatusOK, nil)
			s.mustErrorCode(path+"?account_id=theirs", key, http.StatusForbidden, "forbidden")
			s.mustErrorCode(path, "", http.StatusUnauthorized, "unauthorized")
			s.mustErrorCode(path+"?account_id=nobody", anAdminToken, http.StatusNotFound, "account_not_found")
			s.mustErrorCode(path, anAdminToken, http.StatusBadRequest, "invalid_request")
		})
	}
}
