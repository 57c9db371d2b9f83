package stripe_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
)

const testKey = "sk_test_meterd"

// smallPro prices overage like Pro but past 10 calls, so tests need few
// calls to reach any overage.
const smallPro = "plans:\n  pro:\n    limit: 10\n    overage_micros: 1000\n    monthly_price_cents: 2900\n"

var (
	nov1 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	dec1 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

// clock is a settable clock shared by the meter and the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a real ledger and meter on a settable clock, a Stripe
// stand-in and a billing service pointed at it.
type fixture struct {
	t     testing.TB
	path  string
	plans *meter.Plans
	clock *clock
	rec   *recorder
	led   *ledger.Ledger
	meter *meter.Meter
	svc   *billing.Service
	reg   *prometheus.Registry
}

// newFixture opens everything at start; plansYAML "" means the default
// plans.
func newFixture(tb testing.TB, plansYAML string, start time.Time) *fixture {
	tb.Helper()
	plans := meter.DefaultPlans()
	if plansYAML != "" {
		var err error
		if plans, err = meter.ParsePlans([]byte(plansYAML)); err != nil {
			tb.Fatal(err)
		}
	}
	f := &fixture{t: tb, path: filepath.Join(tb.TempDir(), "meter.db"), plans: plans,
		clock: &clock{t: start}, rec: newRecorder(tb)}
	f.open()
	tb.Cleanup(func() { f.led.Close() })
	return f
}

// open opens the ledger and the meter and builds a fresh service, as a
// process start would.
func (f *fixture) open() {
	f.t.Helper()
	l, err := ledger.Open(f.path, ledger.Options{QueueSize: 1 << 18})
	if err != nil {
		f.t.Fatal(err)
	}
	f.led = l
	f.meter, err = meter.New(context.Background(), meter.Config{Store: l, Plans: f.plans, Now: f.clock.Now, Async: true})
	if err != nil {
		f.t.Fatal(err)
	}
	f.svc, f.reg = f.service(billing.Config{})
}

// restart closes the ledger and opens it again with a new service: what
// a crash and restart of the process leaves.
func (f *fixture) restart() {
	f.t.Helper()
	if err := f.led.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.open()
}

// service builds another service on the fixture's ledger; zero fields of
// cfg take the fixture's values.
func (f *fixture) service(cfg billing.Config) (*billing.Service, *prometheus.Registry) {
	f.t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.SecretKey == "" {
		cfg.SecretKey = testKey
	}
	if cfg.APIBase == "" {
		cfg.APIBase = f.rec.URL()
	}
	cfg.Store, cfg.Accounts, cfg.Now, cfg.Registerer = f.led, f.meter, f.clock.Now, reg
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	svc, err := billing.New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return svc, reg
}

// account creates an account; customer "" means none.
func (f *fixture) account(id, plan, customer string) {
	f.t.Helper()
	if _, err := f.meter.CreateAccount(context.Background(), meter.Account{ID: id, Name: id, Plan: plan,
		StripeCustomerID: customer}); err != nil {
		f.t.Fatal(err)
	}
}

// calls meters n calls for account at the clock's time and waits until
// they are committed.
func (f *fixture) calls(account string, n int) {
	f.t.Helper()
	ctx := context.Background()
	for range n {
		if _, err := f.meter.Track(ctx, meter.Call{AccountID: account, Endpoint: "/v1/things", Method: "GET", Status: 200}); err != nil {
			f.t.Fatal(err)
		}
	}
	f.sync()
}

// sync waits for everything queued so far: the writer commits in order,
// so a write queued now commits after every call queued before it.
func (f *fixture) sync() {
	f.t.Helper()
	if err := f.led.SetCursor(context.Background(), "test-barrier", 0); err != nil {
		f.t.Fatal(err)
	}
}

// run runs billing and fails the test on a run error.
func (f *fixture) run() billing.Report {
	f.t.Helper()
	rep, err := f.svc.Run(context.Background())
	if err != nil {
		f.t.Fatalf("Run: %v", err)
	}
	return rep
}

// intents returns every intent of periods starting in November 2026.
func (f *fixture) intents() []meter.BillingIntent {
	f.t.Helper()
	out, err := f.svc.Charges(context.Background(), "2026-11")
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// billed returns the billing state of an account's November period.
func (f *fixture) billed(account string) meter.BillingState {
	f.t.Helper()
	st, err := f.led.BillingState(context.Background(), account, nov1)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// sumAmounts adds up item amounts.
func sumAmounts(items []item) int64 {
	var sum int64
	for _, it := range items {
		sum += it.Amount
	}
	return sum
}
