package meter_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// mustOpenMeter opens a meter over a real ledger at path.
func mustOpenMeter(tb testing.TB, path string, clk *clock) (*meter.Meter, *ledger.Ledger) {
	tb.Helper()
	l, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	m, err := meter.New(context.Background(), meter.Config{Store: l, Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	return m, l
}

func mustAccount(tb testing.TB, m *meter.Meter, id, plan string) {
	tb.Helper()
	if _, err := m.CreateAccount(context.Background(), meter.Account{ID: id, Name: id, Plan: plan}); err != nil {
		tb.Fatal(err)
	}
}

func track(m *meter.Meter, account string) (meter.Result, error) {
	return m.Track(context.Background(), meter.Call{AccountID: account, Endpoint: "/x", Method: "GET"})
}

func TestMeter_ConcurrentHardLimit(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	m, l := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), clk)
	mustAccount(t, m, "free1", "free")
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 1000; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				res, err := track(m, "free1")
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					allowed.Add(1)
				} else {
					denied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 1000 || denied.Load() != 2000 {
		t.Fatalf("allowed %d denied %d", allowed.Load(), denied.Load())
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	q, _ := m.Quota("free1")
	c, _ := l.Counter(context.Background(), "free1", q.Period.Start)
	if q.Calls != 1000 || c.Calls != 1000 || c.Denied != 2000 {
		t.Fatalf("meter %d, ledger %+v", q.Calls, c)
	}
}

func TestMeter_RestartAndRollover(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meter.db")
	clk := &clock{t: time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC)}
	m, l := mustOpenMeter(t, path, clk)
	mustAccount(t, m, "p", "pro")
	for i := 0; i < 5; i++ {
		if _, err := track(m, "p"); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()

	m2, _ := mustOpenMeter(t, path, clk)
	q, err := m2.Quota("p")
	if err != nil || q.Calls != 5 || q.Account.Plan != "pro" {
		t.Fatalf("after restart: %+v %v", q, err)
	}
	clk.Set(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	res, _ := track(m2, "p")
	if res.Calls != 1 || !res.Reset.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("new period: %+v", res)
	}
	// The clock steps back across the boundary: no second reset, and the
	// call still counts in February.
	clk.Set(time.Date(2026, 1, 31, 22, 0, 0, 0, time.UTC))
	res, _ = track(m2, "p")
	clk.Set(time.Date(2026, 2, 1, 0, 30, 0, 0, time.UTC))
	res, _ = track(m2, "p")
	if res.Calls != 3 {
		t.Fatalf("clock step back reset the quota: calls %d, want 3", res.Calls)
	}
}

func TestMeter_StoreFailureCountsNothing(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 5, 0, 0, 0, 0, time.UTC)}
	m, l := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), clk)
	mustAccount(t, m, "f", "free")
	if _, err := track(m, "f"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := track(m, "f"); !errors.Is(err, meter.ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
	if q, _ := m.Quota("f"); q.Calls != 1 {
		t.Fatalf("a call the ledger refused was counted: %d", q.Calls)
	}
}

func TestMeter_PlanChangeAppliesAtOnce(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 5, 0, 0, 0, 0, time.UTC)}
	plans, err := meter.ParsePlans([]byte(`{"plans": {"free": {"limit": 2, "hard": true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m, err := meter.New(context.Background(), meter.Config{Store: l, Now: clk.Now, Plans: plans})
	if err != nil {
		t.Fatal(err)
	}
	mustAccount(t, m, "a", "free")
	for i, want := range []bool{true, true, false} {
		if res, _ := track(m, "a"); res.Allowed != want {
			t.Fatalf("call %d: allowed=%v", i, res.Allowed)
		}
	}
	pro := "pro"
	if _, err := m.UpdateAccount(context.Background(), "a", meter.AccountPatch{Plan: &pro}); err != nil {
		t.Fatal(err)
	}
	if res, _ := track(m, "a"); !res.Allowed || res.Limit != 100000 {
		t.Fatalf("after upgrade: %+v", res)
	}
}

// TestMeter_EndpointCapSurvivesRestart checks the per-account template
// cap is seeded from the ledger after a restart and resets each period.
func TestMeter_EndpointCapSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meter.db")
	clk := &clock{t: time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC)}
	open := func() (*meter.Meter, *ledger.Ledger) {
		l, err := ledger.Open(path, ledger.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := meter.New(context.Background(), meter.Config{Store: l, Now: clk.Now, MaxEndpoints: 2})
		if err != nil {
			t.Fatal(err)
		}
		return m, l
	}
	call := func(m *meter.Meter, endpoint string) string {
		t.Helper()
		ev := meter.Call{AccountID: "a", Endpoint: endpoint, Method: "GET"}
		if _, err := m.Track(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		return endpoint
	}
	m, l := open()
	mustAccount(t, m, "a", "pro")
	call(m, "/one")
	call(m, "/two")
	l.Close()
	m, l = open()
	defer l.Close()
	call(m, "/three") // over the cap: counted as "other"
	call(m, "/one")
	clk.Set(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	call(m, "/four") // new period, fresh cap
	got, err := l.EndpointUsage(context.Background(), "a", time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int64{}
	for _, e := range got {
		calls[e.Endpoint] = e.Calls
	}
	want := map[string]int64{"/one": 2, "/two": 1, meter.OtherEndpoint: 1, "/four": 1}
	if len(calls) != len(want) {
		t.Fatalf("templates %v, want %v", calls, want)
	}
	for k, v := range want {
		if calls[k] != v {
			t.Fatalf("templates %v, want %v", calls, want)
		}
	}
}
