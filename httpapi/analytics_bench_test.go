package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// The analytics benchmarks run on one ledger holding benchAccounts
// accounts, each with a call on each of the benchDays days ending today
// (across a month boundary): 3,000,000 events and their aggregates.
const (
	benchAccounts = 100_000
	benchDays     = 30
)

var benchToday = time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)

// BenchmarkAnalytics measures the issue 3 targets over real HTTP on
// 127.0.0.1: history?days=30 (p99 ≤ 2 ms), the overview (≤ 50 ms) and one
// page of users sorted by usage (≤ 50 ms). Run it with
//
//	go test -run '^$' -bench BenchmarkAnalytics -benchtime 2000x ./httpapi/
func BenchmarkAnalytics(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds 100,000 accounts × 30 days")
	}
	s := seedAnalyticsBench(b)
	rng := rand.New(rand.NewPCG(3, 4))
	b.Run("History30", func(b *testing.B) {
		benchGet(b, s, func() string {
			return fmt.Sprintf("/api/usage/history?days=30&account_id=%s", benchAccountID(rng.IntN(benchAccounts)))
		})
	})
	b.Run("Endpoints30", func(b *testing.B) {
		benchGet(b, s, func() string {
			return fmt.Sprintf("/api/usage/endpoints?days=30&account_id=%s", benchAccountID(rng.IntN(benchAccounts)))
		})
	})
	b.Run("Overview", func(b *testing.B) {
		benchGet(b, s, func() string { return "/api/admin/analytics/overview" })
	})
	b.Run("UsersByUsage", func(b *testing.B) {
		benchGet(b, s, func() string { return "/api/admin/analytics/users?sort=usage" })
	})
	b.Run("UsersByName500", func(b *testing.B) {
		benchGet(b, s, func() string { return "/api/admin/analytics/users?sort=name&limit=500" })
	})
	// The same work without HTTP and JSON: what the meter itself costs.
	b.Run("MeterOverview", func(b *testing.B) {
		for b.Loop() {
			s.meter.Overview()
		}
	})
	b.Run("MeterListUsers", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.meter.ListUsers(meter.UsersQuery{Sort: meter.SortUsage}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchAccountID(i int) string { return fmt.Sprintf("acct-%06d", i) }

// benchGet sends b.N GETs with the admin token and reports the latency
// percentiles of the round trips.
func benchGet(b *testing.B, s *anServer, path func() string) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		p := path()
		start := time.Now()
		status, body, err := s.send(http.MethodGet, p, anAdminToken, "")
		lat = append(lat, time.Since(start))
		if err != nil || status != http.StatusOK {
			b.Fatalf("GET %s: %d %.200s %v", p, status, body, err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// seedAnalyticsBench writes the accounts and their events through the
// ledger's normal paths (PutAccount, async Append) and starts a meter and
// server on it, reporting how long each step took and the meter's memory
// per account.
func seedAnalyticsBench(b *testing.B) *anServer {
	b.Helper()
	// METERD_BENCH_LEDGER names a ledger file to seed once and reuse
	// across runs (seeding takes a minute or two).
	path := os.Getenv("METERD_BENCH_LEDGER")
	if path == "" {
		path = filepath.Join(b.TempDir(), "meter.db")
	}
	if fileSize(path) == 0 {
		seedBenchLedger(b, path)
	}
	l, err := ledger.Open(path, ledger.Options{NodeID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	clock := &testClock{now: benchToday.Add(13 * time.Hour)}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	m, err := meter.New(context.Background(), meter.Config{Store: l, Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	tLoad := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.Logf("meter loaded %d accounts in %v; heap grew %d MiB, %d bytes per account",
		m.AccountCount(), tLoad.Round(time.Millisecond), (after.HeapAlloc-before.HeapAlloc)>>20,
		(after.HeapAlloc-before.HeapAlloc)/benchAccounts)
	api := httpapi.New(httpapi.Config{Meter: m, AdminToken: anAdminToken, Usage: l,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(api.Handler())
	b.Cleanup(hs.Close)
	return &anServer{tb: b, clock: clock, ledger: l, meter: m, http: hs,
		client: &http.Client{Timeout: 30 * time.Second}}
}

func seedBenchLedger(b *testing.B, path string) {
	l, err := ledger.Open(path, ledger.Options{NodeID: "bench", QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	accounts := benchAccountsList()
	mustPutAccounts(b, l, accounts)
	tAccounts := time.Since(start)
	mustAppendBenchEvents(b, l, accounts)
	tSeed := time.Since(start)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d accounts in %v, then their events (%d days) in %v; file %d MiB",
		benchAccounts, tAccounts.Round(time.Millisecond), benchDays,
		(tSeed - tAccounts).Round(time.Millisecond), fileSize(path)>>20)
}

// benchAccountsList: 70 % free, 25 % pro, 5 % enterprise.
func benchAccountsList() []meter.Account {
	out := make([]meter.Account, benchAccounts)
	created := benchToday.AddDate(0, -6, 0)
	for i := range out {
		a := meter.Account{ID: benchAccountID(i), Name: fmt.Sprintf("Customer %d", (i*7919)%benchAccounts),
			Email: fmt.Sprintf("c%d@example.com", i), Plan: "free", CreatedAt: created.Add(time.Duration(i) * time.Minute)}
		switch i % 20 {
		case 1, 2, 3, 4, 5:
			a.Plan = "pro"
		case 6:
			a.Plan, a.MonthlyPriceCents = "enterprise", 100000
		}
		out[i] = a
	}
	return out
}

// mustPutAccounts stores accounts from many goroutines, so group commit
// packs them into few transactions.
func mustPutAccounts(b *testing.B, l *ledger.Ledger, accounts []meter.Account) {
	const workers = 256
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(accounts); i += workers {
				if err := l.PutAccount(context.Background(), accounts[i]); err != nil {
					b.Errorf("put account: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// mustAppendBenchEvents appends, account by account (so each commit
// touches neighbouring keys), one call a day; account i makes i % 7 + 1
// calls on the last day, so usage differs between accounts.
func mustAppendBenchEvents(b *testing.B, l *ledger.Ledger, accounts []meter.Account) {
	first := benchToday.AddDate(0, 0, -(benchDays - 1))
	endpoints := []string{"/v1/users/{id}", "/v1/orders", "/v1/search", "/v1/orders/{id}"}
	for i, a := range accounts {
		for d := range benchDays {
			at := first.AddDate(0, 0, d).Add(time.Duration(i%86400) * time.Second)
			n := 1
			if d == benchDays-1 {
				n = i%7 + 1
			}
			for range n {
				ev := &meter.Event{Time: at, PeriodStart: meter.PeriodAt(time.Time{}, at).Start, AccountID: a.ID,
					Endpoint: endpoints[(i+d)%len(endpoints)], Method: "GET", Status: 200,
					LatencyMicros: int64(1000 + i%5000), Decision: meter.Allowed}
				mustAppendAsync(b, l, ev)
			}
		}
	}
	// The writer commits in queue order: once this one is durable, all are.
	if err := l.Append(context.Background(), &meter.Event{Time: benchToday, PeriodStart: meter.PeriodAt(time.Time{}, benchToday).Start,
		AccountID: accounts[0].ID, Endpoint: "/v1/flush", Method: "GET", Decision: meter.Allowed}, true); err != nil {
		b.Fatal(err)
	}
}

func mustAppendAsync(b *testing.B, l *ledger.Ledger, ev *meter.Event) {
	for {
		err := l.Append(context.Background(), ev, false)
		if err == nil {
			return
		}
		if !errors.Is(err, meter.ErrOverloaded) {
			b.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
