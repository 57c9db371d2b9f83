package console_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// paintAccounts is the size of the ledger the first-paint budget holds
// for.
const paintAccounts = 100_000

// paintBudget is the first paint of the overview's numbers, measured from
// navigation start on loopback.
const paintBudget = 300 * time.Millisecond

// TestConsole_OverviewFirstPaint loads the overview of a meterd holding
// 100,000 accounts a few times and checks the median time from navigation
// start to the first frame showing the overview's numbers (the browser's
// own performance clock). The overview comes from running totals, so the
// account count should not matter. Under the race detector the figure is
// reported, not enforced.
func TestConsole_OverviewFirstPaint(t *testing.T) {
	ctx := browser(t, 1280, 1000)
	if testing.Short() {
		t.Skip("seeds 100,000 accounts")
	}
	start := time.Now()
	d := openMeterd(t, func(l *ledger.Ledger) { putAccounts(t, l, paintAccounts) }, nil)
	t.Logf("seeded %d accounts in %v", paintAccounts, time.Since(start).Round(time.Millisecond))
	if n := d.Meter.Overview().Total; n != paintAccounts {
		t.Fatalf("meter holds %d accounts", n)
	}
	// Some traffic so the figures are not all zero.
	for i := range 20 {
		d.track(t, fmt.Sprintf("acct-%06d", i*4999), "/v1/orders", 50+i)
	}
	run(t, ctx, chromedp.Navigate(d.HTTP.URL+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	eval[bool](t, ctx, fmt.Sprintf(`sessionStorage.setItem("meterd.admin_token", %q), true`, adminToken))
	var paints, fcps []float64
	for range 7 {
		run(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(d.HTTP.URL+"/ui/#/overview"),
			chromedp.WaitReady(chromedp.CSS(`[data-view="overview"][data-paint-at]`)))
		paints = append(paints, eval[float64](t, ctx, `meterd.overviewPaintAt`))
		fcps = append(fcps, eval[float64](t, ctx, `(performance.getEntriesByName("first-contentful-paint")[0] || {startTime: -1}).startTime`))
	}
	slices.Sort(paints)
	slices.Sort(fcps)
	med := time.Duration(paints[len(paints)/2] * float64(time.Millisecond))
	t.Logf("overview numbers painted, ms after navigation start (7 loads, %d accounts): median %.1f, min %.1f, max %.1f; first contentful paint median %.1f",
		paintAccounts, paints[len(paints)/2], paints[0], paints[len(paints)-1], fcps[len(fcps)/2])
	if med > paintBudget && !raceEnabled {
		t.Errorf("median first paint of the overview %v, budget %v", med, paintBudget)
	}
}

// putAccounts stores n accounts (70 %% free, 25 %% pro, 5 %% enterprise)
// from many goroutines, so group commit packs them into few transactions.
func putAccounts(tb testing.TB, l *ledger.Ledger, n int) {
	tb.Helper()
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const workers = 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				plan := "free"
				switch {
				case i%20 == 0:
					plan = "enterprise"
				case i%4 == 1:
					plan = "pro"
				}
				a := meter.Account{ID: fmt.Sprintf("acct-%06d", i), Name: fmt.Sprintf("Customer %d", i),
					Email: fmt.Sprintf("c%d@example.com", i), Plan: plan, CreatedAt: created}
				if err := l.PutAccount(context.Background(), a); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("put account: %v", err)
	}
}
