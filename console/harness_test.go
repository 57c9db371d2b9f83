package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/meterd/meterd/console"
	"github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/export/webhook"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

const adminToken = "mat_console-test-token-3b8e1f0a"

// testPlans keep limits small so seeding reaches them quickly.
const testPlans = `plans:
  free: {limit: 200, hard: true}
  pro: {limit: 2000, overage_micros: 1000, monthly_price_cents: 2900}
`

// clock is the meter's injected clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// meterd is a real meterd API with the console mounted, over a real
// bbolt ledger, served on loopback.
type meterd struct {
	Clock  *clock
	Ledger *ledger.Ledger
	Meter  *meter.Meter
	HTTP   *httptest.Server
}

// startMeterd serves meterd with the console; origins may call the usage
// endpoints from a browser.
func startMeterd(tb testing.TB, origins ...string) *meterd {
	tb.Helper()
	return openMeterd(tb, nil, origins)
}

// stripeBase, when set, is the Stripe API the next openMeterd bills to
// (a stripe-mock); otherwise billing has no key and only previews.
type meterdOptions struct {
	preload    func(*ledger.Ledger)
	origins    []string
	stripeBase string
	// plans replaces testPlans when set.
	plans string
	// webhooks turns notices on and serves /api/admin/webhooks, with a
	// dispatcher that retries once after 20ms and then gives up.
	webhooks bool
}

// openMeterd is startMeterd with preload run on the ledger before the
// meter loads it.
func openMeterd(tb testing.TB, preload func(*ledger.Ledger), origins []string) *meterd {
	tb.Helper()
	return openMeterdWith(tb, meterdOptions{preload: preload, origins: origins})
}

func openMeterdWith(tb testing.TB, o meterdOptions) *meterd {
	preload, origins := o.preload, o.origins
	tb.Helper()
	l, err := ledger.Open(filepath.Join(tb.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if preload != nil {
		preload(l)
	}
	planText := testPlans
	if o.plans != "" {
		planText = o.plans
	}
	plans, err := meter.ParsePlans([]byte(planText))
	if err != nil {
		tb.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)}
	m, err := meter.New(context.Background(), meter.Config{Store: l, Plans: plans, Now: c.Now})
	if err != nil {
		l.Close()
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var hooks httpapi.Webhooks
	var dispatcher *webhook.Dispatcher
	if o.webhooks {
		m.SetNotices(&meter.NoticeConfig{Default: meter.DefaultThresholds()}, l)
		hooks = webhook.NewAdmin(l, nil, false, 0)
		dispatcher = webhook.New(webhook.Config{Store: l, Schedule: []time.Duration{20 * time.Millisecond},
			Poll: 20 * time.Millisecond, Logger: log})
		dispatcher.Start()
	}
	api := httpapi.New(httpapi.Config{Meter: m, AdminToken: adminToken, Logger: log, Usage: l, Billed: l, Webhooks: hooks,
		Ready:       map[string]httpapi.Readiness{"ledger": func(context.Context) (bool, any) { return true, map[string]any{"queue_depth": l.QueueDepth()} }},
		CORSOrigins: origins, PortalKey: []byte("0123456789abcdef0123456789abcdef"), PortalTTL: 10 * time.Minute})
	// Without a Stripe API, billing has no key: preview and charges work,
	// runs do not.
	bc := stripe.Config{Store: l, Accounts: m, Now: c.Now, Logger: log}
	if o.stripeBase != "" {
		bc.SecretKey, bc.APIBase = "sk_test_console", o.stripeBase
	}
	svc, err := stripe.New(bc)
	if err != nil {
		tb.Fatal(err)
	}
	api.RegisterBilling(svc, "")
	api.RegisterConsole(console.Handler(console.Options{FrameAncestors: origins}))
	hs := httptest.NewServer(api.Handler())
	tb.Cleanup(func() {
		hs.Close()
		if dispatcher != nil {
			dispatcher.Close()
		}
		if err := l.Close(); err != nil {
			tb.Errorf("close ledger: %v", err)
		}
	})
	return &meterd{Clock: c, Ledger: l, Meter: m, HTTP: hs}
}

// do sends a request with the bearer (none if "") and decodes a JSON
// answer into out (if not nil); it returns the status.
func (d *meterd) do(tb testing.TB, method, path, bearer, body string, out any) int {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, d.HTTP.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.HTTP.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func (d *meterd) admin(tb testing.TB, method, path, body string, out any) int {
	tb.Helper()
	return d.do(tb, method, path, adminToken, body, out)
}

func (d *meterd) createAccount(tb testing.TB, id, name, plan string) {
	tb.Helper()
	body := fmt.Sprintf(`{"id":%q,"name":%q,"email":"%s@example.com","plan":%q}`, id, name, id, plan)
	if st := d.admin(tb, http.MethodPost, "/api/admin/accounts", body, nil); st != http.StatusCreated {
		tb.Fatalf("create %s: %d", id, st)
	}
}

// track makes n calls for account on the current clock day, from a few
// goroutines so group commit batches them.
func (d *meterd) track(tb testing.TB, account, endpoint string, n int) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	per := (n + 7) / 8
	for g := 0; g < 8; g++ {
		count := min(per, n-g*per)
		if count <= 0 {
			break
		}
		wg.Go(func() {
			for range count {
				_, err := d.Meter.Track(context.Background(), meter.Call{AccountID: account, Endpoint: endpoint, Method: "GET", Status: 200, LatencyMicros: 12000})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("track %s: %v", account, err)
	}
}

// seed creates accounts on every plan with calls spread over March 2026:
// a free account at its limit (with denied calls), one near it, a pro
// account in overage, an enterprise account, and quiet ones.
func (d *meterd) seed(tb testing.TB) {
	tb.Helper()
	d.Clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	d.createAccount(tb, "acct_acme", "Acme Analytics", "pro")
	d.createAccount(tb, "acct_globex", "Globex", "enterprise")
	d.createAccount(tb, "acct_initech", "Initech", "free")
	d.createAccount(tb, "acct_hooli", "Hooli", "free")
	d.createAccount(tb, "acct_umbrella", "Umbrella", "pro")
	for i := range 6 {
		d.createAccount(tb, fmt.Sprintf("acct_quiet%02d", i), fmt.Sprintf("Quiet %d", i), "free")
	}
	for day := 2; day <= 20; day++ {
		d.Clock.Set(time.Date(2026, 3, day, 9, 0, 0, 0, time.UTC))
		d.track(tb, "acct_acme", "/v1/reports/{id}", 80+day*5)
		d.track(tb, "acct_acme", "/v1/search", 30+day)
		d.track(tb, "acct_globex", "/v1/search", 40+day*2)
		d.track(tb, "acct_initech", "/v1/items", 12)
		if day%3 == 0 {
			d.track(tb, "acct_hooli", "/v1/items", 20)
			d.track(tb, "acct_umbrella", "/v1/export", 25)
		}
	}
	d.Clock.Set(time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC))
}

// browser starts Debian's headless Chromium (METER_TEST_CHROMIUM) with a
// fresh profile and returns a context for chromedp actions, bounded to a
// few minutes.
func browser(tb testing.TB, width, height int) context.Context {
	tb.Helper()
	path := os.Getenv("METER_TEST_CHROMIUM")
	if path == "" {
		tb.Skip("METER_TEST_CHROMIUM is not set (e.g. /usr/bin/chromium); browser tests need a headless Chromium")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	tb.Cleanup(func() { cancelB(); cancelA() })
	// The first run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start chromium %s: %v", path, err)
	}
	// Accept confirm() dialogs (revoking a key asks).
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	tctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	tb.Cleanup(cancelT)
	return tctx
}

func run(tb testing.TB, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.Fatalf("browser: %v", err)
	}
}

// eval runs a script in the page (awaiting a promise) and decodes its
// result.
func eval[T any](tb testing.TB, ctx context.Context, js string) T {
	tb.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("evaluate %q: %v", js, err)
	}
	return v
}

// screenshot writes the page to $METER_SCREENSHOTS_DIR/name.png when the
// variable is set (regenerating docs/img).
func screenshot(tb testing.TB, ctx context.Context, name string) {
	tb.Helper()
	dir := os.Getenv("METER_SCREENSHOTS_DIR")
	if dir == "" {
		return
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// signIn opens the console and signs in through the form.
func signIn(tb testing.TB, ctx context.Context, base string) {
	tb.Helper()
	run(tb, ctx,
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.CSS(`[data-view="overview"] [data-k="users.total"]`)),
	)
}

// dataValues reads every data-k element's data-value on the page.
func dataValues(tb testing.TB, ctx context.Context) map[string]string {
	tb.Helper()
	return eval[map[string]string](tb, ctx, `Object.fromEntries(Array.from(document.querySelectorAll("[data-k][data-value]")).map(e => [e.dataset.k, e.dataset.value]))`)
}
