package meter_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// analyticsClock is the meter's injected clock.
type analyticsClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *analyticsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *analyticsClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *analyticsClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// analyticsPlans keeps the business plan's pricing ($29 Pro, $0.001 per
// overage call) with small limits, so a fixture needs few calls, and adds
// a plan to show that plans come from configuration.
const analyticsPlans = `
plans:
  free: {limit: 10, hard: true}
  pro: {limit: 1000, overage_micros: 1000, monthly_price_cents: 2900}
  team: {limit: 500, overage_micros: 500, monthly_price_cents: 9900}
`

// mustOpenAnalyticsMeter opens a meter in async mode over a real ledger in
// a temp dir; cleanup closes the ledger, which commits the queue.
func mustOpenAnalyticsMeter(tb testing.TB, clock *analyticsClock) *meter.Meter {
	tb.Helper()
	l, err := ledger.Open(filepath.Join(tb.TempDir(), "meter.db"), ledger.Options{NodeID: "t1"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	m, err := meter.New(context.Background(), meter.Config{Store: l, Plans: mustParsePlans(tb, analyticsPlans),
		Now: clock.Now, Async: true})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func mustCreate(tb testing.TB, m *meter.Meter, a meter.Account) {
	tb.Helper()
	if _, err := m.CreateAccount(context.Background(), a); err != nil {
		tb.Fatalf("create %s: %v", a.ID, err)
	}
}

// mustTrack makes n calls for account and returns how many were allowed.
func mustTrack(tb testing.TB, m *meter.Meter, account string, n int) int {
	tb.Helper()
	allowed := 0
	for range n {
		res, err := m.Track(context.Background(), meter.Call{AccountID: account, Endpoint: "/v1/things", Method: "GET"})
		if err != nil {
			tb.Fatalf("track %s: %v", account, err)
		}
		if res.Allowed {
			allowed++
		}
	}
	return allowed
}

func TestMeter_Overview(t *testing.T) {
	clock := &analyticsClock{now: time.Date(2026, 4, 14, 9, 30, 0, 0, time.UTC)}
	m := mustOpenAnalyticsMeter(t, clock)
	for _, a := range []meter.Account{
		{ID: "free-blocked", Plan: "free"}, {ID: "free-near", Plan: "free"}, {ID: "free-low", Plan: "free"},
		{ID: "pro-over", Plan: "pro"}, {ID: "pro-fraction", Plan: "pro"},
		{ID: "ent-a", Plan: "enterprise", MonthlyPriceCents: 50000},
		{ID: "ent-b", Plan: "enterprise", MonthlyPriceCents: 120000},
		{ID: "team-idle", Plan: "team"},
	} {
		mustCreate(t, m, a)
	}
	calls := map[string]int{"free-blocked": 11, "free-near": 8, "free-low": 7, "pro-over": 1050,
		"pro-fraction": 1005, "ent-a": 3}
	for id, n := range calls {
		mustTrack(t, m, id, n)
	}

	got := m.Overview()
	want := meter.Overview{
		At:    clock.Now(),
		Users: map[string]int64{"free": 3, "pro": 2, "enterprise": 2, "team": 1},
		Total: 8,
		// 2 × $29 + the two enterprise contracts + one team seat.
		MRRCents: 2*2900 + 50000 + 120000 + 9900,
		// pro-over: 50 calls × 1000 µ$ = 5.0 cents; pro-fraction: 5 calls
		// = 0.5 cent, rounded down to 0 (never overcharge).
		OverageRevenueCents: 5,
		// Only free-blocked was denied (its 11th call).
		AtLimit: 1,
		// free-blocked 100 %, free-near 80 %, pro-over 105 %,
		// pro-fraction 100.5 %; free-low is at 70 %.
		NearLimit: 4,
		InOverage: 2,
	}
	checkOverview(t, got, want)

	t.Run("NextMonth", func(t *testing.T) {
		clock.Set(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		want.At = clock.Now()
		want.OverageRevenueCents, want.AtLimit, want.NearLimit, want.InOverage = 0, 0, 0, 0
		checkOverview(t, m.Overview(), want)
	})
	t.Run("PlanChange", func(t *testing.T) {
		pro := "pro"
		if _, err := m.UpdateAccount(context.Background(), "free-low", meter.AccountPatch{Plan: &pro}); err != nil {
			t.Fatal(err)
		}
		want.Users["free"], want.Users["pro"] = 2, 3
		want.MRRCents += 2900
		checkOverview(t, m.Overview(), want)
	})
}

func checkOverview(tb testing.TB, got, want meter.Overview) {
	tb.Helper()
	if !got.At.Equal(want.At) {
		tb.Errorf("At = %v, want %v", got.At, want.At)
	}
	if fmt.Sprint(got.Users) != fmt.Sprint(want.Users) {
		tb.Errorf("Users = %v, want %v", got.Users, want.Users)
	}
	type figures struct{ total, mrr, overage, atLimit, nearLimit, inOverage int64 }
	g := figures{got.Total, got.MRRCents, got.OverageRevenueCents, got.AtLimit, got.NearLimit, got.InOverage}
	w := figures{want.Total, want.MRRCents, want.OverageRevenueCents, want.AtLimit, want.NearLimit, want.InOverage}
	if g != w {
		tb.Errorf("Overview figures = %+v, want %+v", g, w)
	}
}

// userFixture is an account of the listing tests with what it is known to
// have: its sort keys are computed here independently of the meter.
type userFixture struct {
	id, name, plan string
	calls          int64
	created        time.Time
}

func (u userFixture) ratio() float64 {
	limits := map[string]int64{"free": 10, "pro": 1000, "team": 500}
	if limits[u.plan] == 0 || u.calls == 0 {
		return 0
	}
	return float64(u.calls) / float64(limits[u.plan])
}

// mustUserFixtures creates accounts with distinct creation times and
// known allowed-call counts, with ties in every sort key.
func mustUserFixtures(tb testing.TB, m *meter.Meter, clock *analyticsClock) []userFixture {
	tb.Helper()
	specs := []struct {
		id, name, plan string
		calls          int
	}{
		{"u01", "Zeta", "free", 5}, {"u02", "alpha", "pro", 500}, {"u03", "Beta", "team", 250},
		{"u04", "Beta", "enterprise", 40}, {"u05", "Gamma", "free", 0}, {"u06", "delta", "pro", 0},
		{"u07", "Eta", "free", 12}, {"u08", "Theta", "pro", 40}, {"u09", "Iota", "team", 5},
		{"u10", "Kappa", "enterprise", 0}, {"u11", "Zeta", "free", 10}, {"u12", "Mu", "pro", 1001},
	}
	var out []userFixture
	for i, s := range specs {
		if i%4 != 3 { // every fourth account shares its predecessor's creation time
			clock.Advance(time.Second)
		}
		mustCreate(tb, m, meter.Account{ID: s.id, Name: s.name, Plan: s.plan, MonthlyPriceCents: 1000})
		allowed := mustTrack(tb, m, s.id, s.calls)
		out = append(out, userFixture{id: s.id, name: s.name, plan: s.plan, calls: int64(allowed), created: clock.Now()})
	}
	return out
}

func expectedOrder(users []userFixture, by meter.UserSort, desc bool) []string {
	sorted := slices.Clone(users)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if desc {
			a, b = b, a
		}
		switch {
		case by == meter.SortUsage && a.ratio() != b.ratio():
			return a.ratio() < b.ratio()
		case by == meter.SortCalls && a.calls != b.calls:
			return a.calls < b.calls
		case by == meter.SortName && a.name != b.name:
			return a.name < b.name
		case by == meter.SortCreated && !a.created.Equal(b.created):
			return a.created.Before(b.created)
		}
		return a.id < b.id
	})
	ids := make([]string, len(sorted))
	for i, u := range sorted {
		ids[i] = u.id
	}
	return ids
}

// listAll pages through the listing and returns the ids in order.
func listAll(tb testing.TB, m *meter.Meter, q meter.UsersQuery) []string {
	tb.Helper()
	return listAllWith(tb, m, q, func() {})
}

// listAllWith is listAll calling between after every page but the last.
func listAllWith(tb testing.TB, m *meter.Meter, q meter.UsersQuery, between func()) []string {
	tb.Helper()
	var ids []string
	for page := 0; ; page++ {
		if page > 1000 {
			tb.Fatal("listing does not end")
		}
		p, err := m.ListUsers(q)
		if err != nil {
			tb.Fatalf("list %+v: %v", q, err)
		}
		if p.NextCursor != "" && len(p.Users) != q.Limit {
			tb.Fatalf("page %d has %d users, want %d before the last page", page, len(p.Users), q.Limit)
		}
		for _, u := range p.Users {
			ids = append(ids, u.Account.ID)
		}
		if p.NextCursor == "" {
			return ids
		}
		q.Cursor = p.NextCursor
		between()
	}
}

func TestMeter_ListUsers(t *testing.T) {
	clock := &analyticsClock{now: time.Date(2026, 4, 14, 9, 30, 0, 0, time.UTC)}
	m := mustOpenAnalyticsMeter(t, clock)
	users := mustUserFixtures(t, m, clock)
	tests := []struct {
		sort  meter.UserSort
		order string
		desc  bool
	}{
		{meter.SortUsage, "", true}, {meter.SortUsage, "asc", false}, {meter.SortUsage, "desc", true},
		{meter.SortCalls, "", true}, {meter.SortCalls, "asc", false}, {meter.SortCalls, "desc", true},
		{meter.SortName, "", false}, {meter.SortName, "asc", false}, {meter.SortName, "desc", true},
		{meter.SortCreated, "", false}, {meter.SortCreated, "asc", false}, {meter.SortCreated, "desc", true},
		{"", "", true},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 5, 12, 500} {
			t.Run(fmt.Sprintf("%s_%s_%d", tt.sort, tt.order, limit), func(t *testing.T) {
				by := tt.sort
				if by == "" {
					by = meter.SortUsage
				}
				got := listAll(t, m, meter.UsersQuery{Sort: tt.sort, Order: tt.order, Limit: limit})
				if want := expectedOrder(users, by, tt.desc); !slices.Equal(got, want) {
					t.Errorf("order\n got %v\nwant %v", got, want)
				}
			})
		}
	}
	t.Run("Plan", func(t *testing.T) {
		got := listAll(t, m, meter.UsersQuery{Plan: "pro", Sort: meter.SortCalls, Limit: 2})
		if want := []string{"u12", "u02", "u08", "u06"}; !slices.Equal(got, want) {
			t.Errorf("pro accounts by calls: %v, want %v", got, want)
		}
	})
	t.Run("Figures", func(t *testing.T) {
		p, err := m.ListUsers(meter.UsersQuery{Sort: meter.SortCalls, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		q := p.Users[0]
		if q.Account.ID != "u12" || q.Calls != 1001 || q.Overage != 1 || q.Remaining() != 0 ||
			q.UsagePercentage() != 100.1 || q.LastCallAt.IsZero() {
			t.Errorf("top account %+v", q)
		}
	})
	t.Run("DefaultLimit", func(t *testing.T) {
		for i := range meter.DefaultUsersLimit {
			mustCreate(t, m, meter.Account{ID: fmt.Sprintf("v%03d", i), Plan: "free"})
		}
		p, err := m.ListUsers(meter.UsersQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Users) != meter.DefaultUsersLimit || p.NextCursor == "" {
			t.Errorf("default page: %d users, cursor %q", len(p.Users), p.NextCursor)
		}
	})
}

func TestMeter_ListUsers_Invalid(t *testing.T) {
	clock := &analyticsClock{now: time.Date(2026, 4, 14, 9, 30, 0, 0, time.UTC)}
	m := mustOpenAnalyticsMeter(t, clock)
	for i := range 3 {
		mustCreate(t, m, meter.Account{ID: fmt.Sprintf("a%d", i), Plan: "free"})
	}
	first, err := m.ListUsers(meter.UsersQuery{Sort: meter.SortName, Limit: 1})
	if err != nil || first.NextCursor == "" {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	c := first.NextCursor
	tests := []struct {
		name  string
		q     meter.UsersQuery
		field string
	}{
		{"Sort", meter.UsersQuery{Sort: "revenue"}, "sort"},
		{"Order", meter.UsersQuery{Order: "up"}, "order"},
		{"LimitNegative", meter.UsersQuery{Limit: -1}, "limit"},
		{"LimitTooLarge", meter.UsersQuery{Limit: meter.MaxUsersLimit + 1}, "limit"},
		{"Plan", meter.UsersQuery{Plan: "gold"}, "plan"},
		{"CursorGarbage", meter.UsersQuery{Cursor: "not a cursor!"}, "cursor"},
		{"CursorTruncated", meter.UsersQuery{Sort: meter.SortName, Limit: 1, Cursor: c[:len(c)-3]}, "cursor"},
		{"CursorOtherSort", meter.UsersQuery{Sort: meter.SortCreated, Limit: 1, Cursor: c}, "cursor"},
		{"CursorOtherOrder", meter.UsersQuery{Sort: meter.SortName, Order: "desc", Limit: 1, Cursor: c}, "cursor"},
		{"CursorOtherPlan", meter.UsersQuery{Sort: meter.SortName, Plan: "free", Limit: 1, Cursor: c}, "cursor"},
		{"CursorHuge", meter.UsersQuery{Cursor: strings.Repeat("A", 2000)}, "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.ListUsers(tt.q)
			var ve *meter.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Errorf("err = %v, want a ValidationError on %q", err, tt.field)
			}
		})
	}
	t.Run("CursorOtherLimit", func(t *testing.T) {
		// The page size may change between pages.
		p, err := m.ListUsers(meter.UsersQuery{Sort: meter.SortName, Limit: 5, Cursor: c})
		if err != nil || len(p.Users) != 2 || p.NextCursor != "" {
			t.Errorf("got %+v, %v", p, err)
		}
	})
}

// TestMeter_ListUsers_ConcurrentAdds pages through the accounts while
// others are being created: every account that existed before the first
// page is listed exactly once, and no account twice.
func TestMeter_ListUsers_ConcurrentAdds(t *testing.T) {
	clock := &analyticsClock{now: time.Date(2026, 4, 14, 9, 30, 0, 0, time.UTC)}
	m := mustOpenAnalyticsMeter(t, clock)
	const before = 120
	for i := range before {
		clock.Advance(time.Millisecond)
		mustCreate(t, m, meter.Account{ID: fmt.Sprintf("old-%03d", (i*37)%before),
			Name: fmt.Sprintf("name %03d", (i*53)%before), Plan: "free"})
	}
	for _, by := range []meter.UserSort{meter.SortUsage, meter.SortCalls, meter.SortName, meter.SortCreated} {
		for _, order := range []string{"asc", "desc"} {
			t.Run(string(by)+"_"+order, func(t *testing.T) {
				stop, created := make(chan struct{}), make(chan struct{}, 1)
				var wg sync.WaitGroup
				wg.Go(func() { addAccounts(t, m, clock, string(by)+order, stop, created) })
				// Each page waits for a new account, so additions
				// interleave with the paging whatever the scheduler does.
				between := func() {
					select {
					case <-created:
					case <-time.After(10 * time.Second):
						t.Fatal("no account created")
					}
				}
				ids := listAllWith(t, m, meter.UsersQuery{Sort: by, Order: order, Limit: 7}, between)
				close(stop)
				wg.Wait()
				checkVisitedOnce(t, ids, before)
			})
		}
	}
}

// addAccounts creates accounts, whose names and ids fall all over the
// sort orders, until stop is closed.
func addAccounts(tb testing.TB, m *meter.Meter, clock *analyticsClock, tag string, stop, created chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		clock.Advance(time.Millisecond)
		id := fmt.Sprintf("new-%s-%03d", tag, i)
		if i%2 == 0 {
			id = fmt.Sprintf("a-new-%s-%03d", tag, i)
		}
		if _, err := m.CreateAccount(context.Background(), meter.Account{ID: id, Name: fmt.Sprintf("name %03d", (i*71)%200),
			Plan: "free"}); err != nil {
			tb.Errorf("create %s: %v", id, err)
			return
		}
		select {
		case created <- struct{}{}:
		default:
		}
	}
}

func checkVisitedOnce(tb testing.TB, ids []string, before int) {
	tb.Helper()
	seen := map[string]int{}
	old := 0
	for _, id := range ids {
		seen[id]++
		if seen[id] == 2 {
			tb.Errorf("%s listed twice", id)
		}
		if strings.HasPrefix(id, "old-") && seen[id] == 1 {
			old++
		}
	}
	if old != before {
		tb.Errorf("listed %d of the %d accounts that existed before the first page", old, before)
	}
}

// TestMeter_Overview_MatchesQuotas drives random calls, plan changes,
// new accounts and clock moves across period ends (anchored accounts
// included) and checks after each step that the overview equals the sum
// computed from the public per-account quotas.
func TestMeter_Overview_MatchesQuotas(t *testing.T) {
	clock := &analyticsClock{now: time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)}
	m := mustOpenAnalyticsMeter(t, clock)
	rng := rand.New(rand.NewPCG(7, 11))
	plans := []string{"free", "pro", "team", "enterprise"}
	var ids []string
	for step := range 300 {
		switch op := rng.IntN(10); {
		case op == 0 || len(ids) < 3:
			id := fmt.Sprintf("acct-%03d", len(ids))
			a := meter.Account{ID: id, Plan: plans[rng.IntN(len(plans))], MonthlyPriceCents: int64(rng.IntN(3)) * 1000}
			if rng.IntN(3) == 0 {
				anchor := clock.Now().Add(-time.Duration(rng.IntN(40*24)) * time.Hour)
				a.BillingAnchor = &anchor
			}
			mustCreate(t, m, a)
			ids = append(ids, id)
		case op == 1:
			p := plans[rng.IntN(len(plans))]
			if _, err := m.UpdateAccount(context.Background(), ids[rng.IntN(len(ids))], meter.AccountPatch{Plan: &p}); err != nil {
				t.Fatal(err)
			}
		case op == 2:
			clock.Advance(time.Duration(rng.IntN(10*24*60)) * time.Minute)
		default:
			mustTrack(t, m, ids[rng.IntN(len(ids))], 1+rng.IntN(300))
		}
		if got, want := m.Overview(), overviewFromQuotas(m); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: overview\n got %+v\nwant %+v", step, got, want)
		}
	}
}

// overviewFromQuotas is the overview computed the slow, obvious way.
func overviewFromQuotas(m *meter.Meter) meter.Overview {
	o := meter.Overview{At: m.Now(), Users: map[string]int64{}}
	for _, name := range m.Plans().Names() {
		o.Users[name] = 0
	}
	for _, q := range m.Quotas() {
		o.Total++
		o.Users[q.Plan.Name]++
		o.MRRCents += q.Plan.Price(&q.Account)
		o.OverageRevenueCents += q.OverageCostCents()
		if q.Plan.Unlimited() {
			continue
		}
		if q.Plan.Hard && q.Denied > 0 {
			o.AtLimit++
		}
		if q.UsagePercentage() >= meter.NearLimitPercent {
			o.NearLimit++
		}
		if !q.Plan.Hard && q.Calls > q.Plan.Limit {
			o.InOverage++
		}
	}
	return o
}
