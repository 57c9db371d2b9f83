package console_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsole_Overview signs in and checks that every number on the
// overview is the JSON API's, that the 30-day chart has 30 points stacked
// by plan, and that the page fits 375 px and is keyboard reachable.
func TestConsole_Overview(t *testing.T) {
	ctx := browser(t, 1280, 1000)
	d := startMeterd(t)
	d.seed(t)
	signIn(t, ctx, d.HTTP.URL)

	var o struct {
		Users    map[string]int64 `json:"users"`
		APICalls struct {
			Today     int64 `json:"today"`
			ThisMonth int64 `json:"this_month"`
		} `json:"api_calls"`
		MRRCents  int64  `json:"mrr_cents"`
		Revenue   int64  `json:"overage_revenue_cents"`
		Billed    *int64 `json:"overage_billed_cents"`
		Unbilled  *int64 `json:"overage_unbilled_cents"`
		AtLimit   int64  `json:"accounts_at_limit"`
		NearLimit int64  `json:"accounts_near_limit"`
		InOverage int64  `json:"accounts_in_overage"`
	}
	if st := d.admin(t, http.MethodGet, "/api/admin/analytics/overview", "", &o); st != http.StatusOK {
		t.Fatalf("overview: %d", st)
	}
	if o.Users["total"] != 11 || o.APICalls.Today == 0 || o.Revenue == 0 || o.AtLimit == 0 {
		t.Fatalf("seed did not produce the figures the test needs: %+v", o)
	}
	want := map[string]int64{"users.total": o.Users["total"], "users.free": o.Users["free"], "users.pro": o.Users["pro"],
		"users.enterprise": o.Users["enterprise"], "api_calls.today": o.APICalls.Today, "api_calls.this_month": o.APICalls.ThisMonth,
		"mrr_cents": o.MRRCents, "overage_revenue_cents": o.Revenue, "overage_billed_cents": *o.Billed,
		"overage_unbilled_cents": *o.Unbilled, "accounts_at_limit": o.AtLimit, "accounts_near_limit": o.NearLimit,
		"accounts_in_overage": o.InOverage}
	got := dataValues(t, ctx)
	for k, v := range want {
		if got[k] != strconv.FormatInt(v, 10) {
			t.Errorf("overview %s shows %q, the API says %d", k, got[k], v)
		}
	}
	// The visible text is the same number, formatted.
	text := eval[string](t, ctx, `document.querySelector('[data-k="api_calls.this_month"]').textContent`)
	if text != commas(o.APICalls.ThisMonth) {
		t.Errorf("calls this month reads %q, want %q", text, commas(o.APICalls.ThisMonth))
	}
	if mrr := eval[string](t, ctx, `document.querySelector('[data-k="mrr_cents"]').textContent`); mrr != "$58.00" {
		t.Errorf("MRR reads %q, want $58.00 (two pro accounts)", mrr)
	}

	// History chart: 30 days, one series per plan, stacked to the total.
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS(`#chart-history[data-points="30"]`)))
	var hist struct {
		Total []int64            `json:"total"`
		Plans map[string][]int64 `json:"plans"`
	}
	d.admin(t, http.MethodGet, "/api/admin/analytics/history?days=30", "", &hist)
	top := eval[[]float64](t, ctx, `meterd.charts["overview-history"].data[1]`)
	if len(top) != 30 || int64(top[29]) != hist.Total[29] || hist.Total[29] != o.APICalls.Today {
		t.Errorf("chart's top stack ends at %v, history total %v, calls today %d", top[len(top)-1:], hist.Total[29:], o.APICalls.Today)
	}
	if hist.Plans["pro"][29]+hist.Plans["free"][29]+hist.Plans["enterprise"][29] != hist.Total[29] {
		t.Errorf("plans do not add up to the total: %v", hist)
	}
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS(`#near tr[data-account="acct_initech"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#health [data-k="queue_depth"]`)))
	screenshot(t, ctx, "overview")

	t.Run("Keyboard", func(t *testing.T) {
		run(t, ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#chart-history[data-points="30"]`)),
			chromedp.KeyEvent("\t"))
		if cls := eval[string](t, ctx, `document.activeElement.className`); cls != "skip" {
			t.Errorf("first Tab focuses %q, want the skip link", cls)
		}
		run(t, ctx, chromedp.KeyEvent("\t"))
		if href := eval[string](t, ctx, `document.activeElement.getAttribute("href")`); href != "#/overview" {
			t.Errorf("second Tab focuses %q, want the Overview link", href)
		}
		// Tab to Accounts and follow it with Enter: the view changes and
		// focus moves to the new content.
		run(t, ctx, chromedp.KeyEvent("\t"), chromedp.KeyEvent("\r"),
			chromedp.WaitVisible(chromedp.CSS(`[data-view="accounts"] #users tr`)))
		if id := eval[string](t, ctx, `document.activeElement.id`); id != "main" {
			t.Errorf("after following a link focus is on %q, want main", id)
		}
		unlabelled := eval[int](t, ctx, `Array.from(document.querySelectorAll("input,select")).filter(e => !e.labels || !e.labels.length).length`)
		if unlabelled != 0 {
			t.Errorf("%d controls have no label", unlabelled)
		}
	})
	t.Run("Narrow", func(t *testing.T) {
		run(t, ctx, chromedp.EmulateViewport(375, 800), chromedp.Navigate(d.HTTP.URL+"/ui/#/overview"),
			chromedp.WaitVisible(chromedp.CSS(`#chart-history[data-points="30"]`)))
		if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 375 {
			t.Errorf("overview is %d px wide at a 375 px viewport", w)
		}
		screenshot(t, ctx, "overview-375")
		run(t, ctx, chromedp.Navigate(d.HTTP.URL+"/ui/#/accounts/acct_acme"),
			chromedp.WaitVisible(chromedp.CSS(`#chart-account[data-points="30"]`)))
		if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 375 {
			t.Errorf("account page is %d px wide at a 375 px viewport", w)
		}
	})
}

// commas formats n as the console does (en-US grouping).
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// TestConsole_Accounts creates an account and a key in the console, sees
// the key once, revokes it, and sees /v1/track refuse it; then checks an
// account page's history chart.
func TestConsole_Accounts(t *testing.T) {
	ctx := browser(t, 1280, 1000)
	d := startMeterd(t)
	d.seed(t)
	signIn(t, ctx, d.HTTP.URL)

	for i := range 20 {
		d.createAccount(t, fmt.Sprintf("acct_more%02d", i), fmt.Sprintf("More %02d", i), "free")
	}
	run(t, ctx, chromedp.Navigate(d.HTTP.URL+"/ui/#/accounts"),
		chromedp.WaitVisible(chromedp.CSS(`#users tr[data-account="acct_acme"]`)))
	t.Run("SearchAndPaging", func(t *testing.T) {
		// 31 accounts, 25 a page, by usage: Acme (the most used) first.
		rows := `Array.from(document.querySelectorAll("#users tr[data-account]")).map(r => r.dataset.account)`
		first := eval[[]string](t, ctx, rows)
		if len(first) != 25 || first[0] != "acct_acme" {
			t.Fatalf("page 1: %d rows starting %v", len(first), first[:1])
		}
		run(t, ctx, chromedp.Click(chromedp.ID("next")), chromedp.WaitNotPresent(chromedp.CSS(`#users tr[data-account="acct_acme"]`)))
		second := eval[[]string](t, ctx, rows)
		if len(second) != 6 || eval[bool](t, ctx, `document.getElementById("next").disabled`) != true {
			t.Errorf("page 2: %d rows %v, want the last 6 and Next disabled", len(second), second)
		}
		run(t, ctx, chromedp.Click(chromedp.ID("prev")), chromedp.WaitVisible(chromedp.CSS(`#users tr[data-account="acct_acme"]`)))
		run(t, ctx, chromedp.SetValue(chromedp.ID("sort"), "name"), chromedp.Click(chromedp.ID("filter-apply")),
			chromedp.WaitVisible(chromedp.CSS(`#users tr[data-account="acct_acme"] + tr[data-account="acct_globex"]`)))
		// By name, ascending: "Acme Analytics" is still first, "Globex" on page 1.
		if byName := eval[[]string](t, ctx, rows); len(byName) != 25 || byName[0] != "acct_acme" || byName[1] != "acct_globex" {
			t.Errorf("sorted by name: %v", byName)
		}
		run(t, ctx, chromedp.SendKeys(chromedp.ID("q"), "glob"), chromedp.Click(chromedp.ID("filter-apply")),
			chromedp.WaitNotPresent(chromedp.CSS(`#users tr[data-account="acct_acme"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#users tr[data-account="acct_globex"]`)))
		if n := eval[int](t, ctx, `document.querySelectorAll("#users tr[data-account]").length`); n != 1 {
			t.Errorf("search 'glob' lists %d accounts, want 1", n)
		}
	})

	run(t, ctx,
		chromedp.SendKeys(chromedp.ID("new-name"), "Browser Co"),
		chromedp.SendKeys(chromedp.ID("new-email"), "ops@browser.example"),
		chromedp.SendKeys(chromedp.ID("new-id"), "acct_browser"),
		chromedp.Click(chromedp.ID("create-submit")),
		chromedp.WaitVisible(chromedp.CSS(`code[data-k="account_id"]`)),
		chromedp.Click(chromedp.ID("issue-key")),
		chromedp.WaitVisible(chromedp.ID("new-key-value")),
	)
	key := eval[string](t, ctx, `document.getElementById("new-key-value").textContent`)
	if !strings.HasPrefix(key, "mk_") && len(key) < 20 {
		t.Fatalf("shown key %q does not look like a key", key)
	}
	track := func() int {
		return d.do(t, http.MethodPost, "/v1/track", "", fmt.Sprintf(`{"api_key":%q,"endpoint":"/v1/x","method":"GET"}`, key), nil)
	}
	if st := track(); st != http.StatusOK {
		t.Fatalf("track with the new key: %d", st)
	}
	// Once: after "I have copied it" and a reload, the key is nowhere.
	run(t, ctx, chromedp.Click(chromedp.ID("new-key-done")), chromedp.WaitNotPresent(chromedp.ID("new-key-value")),
		chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#keys tr[data-key]`)))
	if html := eval[string](t, ctx, `document.documentElement.outerHTML + JSON.stringify(sessionStorage)`); strings.Contains(html, key) {
		t.Error("the key's plaintext is still in the page or storage after it was dismissed")
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`#keys button[data-revoke]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys .badge.bad`)))
	if st := track(); st != http.StatusUnauthorized {
		t.Errorf("track with the revoked key: %d, want 401", st)
	}

	t.Run("HistoryChart", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(d.HTTP.URL+"/ui/#/accounts/acct_acme"),
			chromedp.WaitVisible(chromedp.CSS(`#chart-account[data-points="30"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#endpoints table`)))
		var hb struct {
			Days []struct {
				APICalls int64 `json:"api_calls"`
			} `json:"days"`
		}
		d.admin(t, http.MethodGet, "/api/usage/history?days=30&account_id=acct_acme", "", &hb)
		xs := eval[[]float64](t, ctx, `meterd.charts["account-history"].data[0]`)
		calls := eval[[]float64](t, ctx, `meterd.charts["account-history"].data[2]`)
		if len(xs) != len(hb.Days) || len(xs) != 30 {
			t.Fatalf("chart has %d points, history %d days, want 30", len(xs), len(hb.Days))
		}
		for i, day := range hb.Days {
			if int64(calls[i]) != day.APICalls {
				t.Fatalf("day %d: chart %v, API %d", i, calls[i], day.APICalls)
			}
		}
		if v := dataValues(t, ctx)["api_calls"]; v == "" || v == "0" {
			t.Errorf("gauge shows %q calls", v)
		}
		screenshot(t, ctx, "account")
	})
	t.Run("PlanChange", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(d.HTTP.URL+"/ui/#/accounts/acct_hooli"),
			chromedp.WaitVisible(chromedp.ID("plan-select")),
			chromedp.SetValue(chromedp.ID("plan-select"), "pro"),
			chromedp.Click(chromedp.ID("plan-submit")),
			chromedp.WaitVisible(chromedp.CSS(`#gauge [data-k="plan"]`)))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("plan-msg").textContent !== ""`)); err != nil {
			t.Fatal(err)
		}
		var a struct {
			Plan string `json:"plan"`
		}
		d.admin(t, http.MethodGet, "/api/admin/accounts/acct_hooli", "", &a)
		msg := eval[string](t, ctx, `document.getElementById("plan-msg").textContent`)
		if a.Plan != "pro" || !strings.Contains(msg, "pro") {
			t.Errorf("after changing to pro: account plan %q, message %q", a.Plan, msg)
		}
	})
	t.Run("Billing", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(d.HTTP.URL+"/ui/#/billing"),
			chromedp.WaitVisible(chromedp.CSS(`#preview [data-k="preview_cents"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#reconcile p`)))
		var pv struct {
			ChargedCents int64 `json:"charged_cents"`
		}
		d.admin(t, http.MethodGet, "/api/admin/billing/preview", "", &pv)
		if got := dataValues(t, ctx)["preview_cents"]; got != strconv.FormatInt(pv.ChargedCents, 10) {
			t.Errorf("preview shows %s cents, the API %d", got, pv.ChargedCents)
		}
		// This server has no Stripe key: the reconcile panel says why it
		// has no report (TestConsole_BillingCharges shows one).
		if txt := eval[string](t, ctx, `document.getElementById("reconcile").textContent`); !strings.Contains(txt, "no Stripe secret key") {
			t.Errorf("reconcile panel reads %q", txt)
		}
		screenshot(t, ctx, "billing")
	})
}

// TestConsole_UsagePage opens the customer usage page with a portal
// token: it shows that account's usage, the token reads no other account,
// and once it expires the page says so.
func TestConsole_UsagePage(t *testing.T) {
	ctx := browser(t, 1024, 900)
	d := startMeterd(t)
	d.seed(t)
	var tok struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	if st := d.admin(t, http.MethodPost, "/api/admin/accounts/acct_acme/portal-token", `{"ttl_seconds":600}`, &tok); st != http.StatusCreated {
		t.Fatalf("portal token: %d", st)
	}
	var cur struct {
		APICalls int64 `json:"api_calls"`
	}
	if st := d.do(t, http.MethodGet, "/api/usage/current", tok.Token, "", &cur); st != http.StatusOK {
		t.Fatalf("usage with the portal token: %d", st)
	}
	run(t, ctx, chromedp.Navigate(d.HTTP.URL+"/ui/usage#token="+tok.Token),
		chromedp.WaitVisible(chromedp.CSS(`#usage[data-account="acct_acme"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#chart-usage[data-points="30"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#endpoints table`)))
	if got := dataValues(t, ctx)["api_calls"]; got != strconv.FormatInt(cur.APICalls, 10) {
		t.Errorf("usage page shows %s calls, the API %d", got, cur.APICalls)
	}
	if h := eval[string](t, ctx, `location.href`); strings.Contains(h, "mpt_") {
		t.Errorf("the token stays in the address bar: %s", h)
	}
	screenshot(t, ctx, "usage")

	t.Run("OtherAccount", func(t *testing.T) {
		for _, path := range []string{"/api/usage/current?account_id=acct_globex", "/api/usage/history?account_id=acct_globex",
			"/api/usage/endpoints?account_id=acct_globex"} {
			if st := d.do(t, http.MethodGet, path, tok.Token, "", nil); st != http.StatusForbidden {
				t.Errorf("%s with acct_acme's token: %d, want 403", path, st)
			}
		}
		for _, path := range []string{"/api/admin/accounts/acct_acme", "/api/admin/analytics/overview"} {
			if st := d.do(t, http.MethodGet, path, tok.Token, "", nil); st != http.StatusUnauthorized {
				t.Errorf("%s with a portal token: %d, want 401", path, st)
			}
		}
		forged := tok.Token[:len(tok.Token)-3] + "AAA"
		if st := d.do(t, http.MethodGet, "/api/usage/current", forged, "", nil); st != http.StatusUnauthorized {
			t.Errorf("a forged signature: %d, want 401", st)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		d.Clock.Set(d.Clock.Now().Add(601 * time.Second))
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if st := d.do(t, http.MethodGet, "/api/usage/current", tok.Token, "", &e); st != http.StatusUnauthorized || e.Error.Code != "portal_token_expired" {
			t.Errorf("expired token: %d %s, want 401 portal_token_expired", st, e.Error.Code)
		}
		run(t, ctx, chromedp.Navigate(d.HTTP.URL+"/ui/usage#token="+tok.Token),
			chromedp.WaitVisible(chromedp.ID("cred-form")))
		if msg := eval[string](t, ctx, `document.getElementById("usage-error").textContent`); !strings.Contains(msg, "expired") {
			t.Errorf("usage page after expiry says %q", msg)
		}
	})
}

// TestConsole_CORS calls the usage API from pages on two other origins:
// the allowed one passes the preflight and reads usage, the other is
// refused by the browser.
func TestConsole_CORS(t *testing.T) {
	ctx := browser(t, 800, 600)
	// The customer's app: a blank page, or at /embed?meterd=URL&token=T the
	// documented script embed of the usage page.
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>customer app</title>")
		if r.URL.Path == "/embed" {
			q := r.URL.Query()
			fmt.Fprintf(w, `<h1>Your usage</h1><script src="%s/ui/static/embed.js" data-token="%s" data-height="600" async></script>`,
				html.EscapeString(q.Get("meterd")), html.EscapeString(q.Get("token")))
		}
	})
	allowed := httptest.NewServer(page)
	defer allowed.Close()
	other := httptest.NewServer(page)
	defer other.Close()
	d := startMeterd(t, allowed.URL)
	d.createAccount(t, "acct_cors", "CORS", "pro")
	var tok struct {
		Token string `json:"token"`
	}
	d.admin(t, http.MethodPost, "/api/admin/accounts/acct_cors/portal-token", "", &tok)
	script := fmt.Sprintf(`fetch(%q, {headers: {Authorization: "Bearer %s"}}).then(r => r.json()).then(b => b.account_id, e => "refused: " + e.message)`,
		d.HTTP.URL+"/api/usage/current", tok.Token)

	run(t, ctx, chromedp.Navigate(allowed.URL))
	if got := eval[string](t, ctx, script); got != "acct_cors" {
		t.Errorf("from the allowed origin: %q, want acct_cors", got)
	}
	run(t, ctx, chromedp.Navigate(other.URL))
	if got := eval[string](t, ctx, script); !strings.HasPrefix(got, "refused") {
		t.Errorf("from another origin: %q, want the browser to refuse", got)
	}
	t.Run("Embed", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(allowed.URL+"/embed?meterd="+url.QueryEscape(d.HTTP.URL)+"&token="+url.QueryEscape(tok.Token)),
			chromedp.WaitReady(chromedp.CSS("iframe")))
		// Both servers are on 127.0.0.1, one site: the frame's document is
		// reachable from the page's target once it has loaded.
		deadline := time.Now().Add(20 * time.Second)
		for {
			nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("iframe")))
			if err == nil && len(nodes) == 1 && nodes[0].ContentDocument != nil {
				qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err = chromedp.Run(qctx, chromedp.AttributeValue(chromedp.CSS(`#usage[data-account="acct_cors"]`), "data-account", chromedp.FromNode(nodes[0])))
				cancel()
				if err == nil {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the embedded usage page never showed acct_cors: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// A site not in --frame-origins (default: the CORS origins) gets a
		// blocked frame.
		run(t, ctx, chromedp.Navigate(other.URL+"/embed?meterd="+url.QueryEscape(d.HTTP.URL)+"&token="+url.QueryEscape(tok.Token)),
			chromedp.WaitReady(chromedp.CSS("iframe")))
		time.Sleep(time.Second)
		nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("iframe")))
		if err != nil || len(nodes) != 1 {
			t.Fatalf("iframe: %v", err)
		}
		if nodes[0].ContentDocument != nil {
			qctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err = chromedp.Run(qctx, chromedp.Nodes(chromedp.CSS(`#usage`), chromedp.FromNode(nodes[0])))
			cancel()
			if err == nil {
				t.Error("the usage page rendered inside a site that may not frame it")
			}
		}
	})
	// The preflights themselves.
	for _, c := range []struct {
		origin string
		want   int
	}{{allowed.URL, http.StatusNoContent}, {other.URL, http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodOptions, d.HTTP.URL+"/api/usage/history", nil)
		req.Header.Set("Origin", c.origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		acao := resp.Header.Get("Access-Control-Allow-Origin")
		if resp.StatusCode != c.want || (c.want == http.StatusNoContent) != (acao == c.origin) {
			t.Errorf("preflight from %s: %d, Allow-Origin %q; want %d", c.origin, resp.StatusCode, acao, c.want)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight from %s allows credentials", c.origin)
		}
	}
}

// TestConsole_BillingCharges bills the seeded overage to stripe-mock, then
// checks the billing page lists the charge with its status and Stripe id,
// and the overview's health panel the run.
func TestConsole_BillingCharges(t *testing.T) {
	base := os.Getenv("METER_TEST_STRIPE_MOCK_URL")
	if base == "" {
		t.Skip("METER_TEST_STRIPE_MOCK_URL is not set: run stripe-mock -http-addr 127.0.0.1:12111 and set it to http://127.0.0.1:12111")
	}
	ctx := browser(t, 1280, 1000)
	d := openMeterdWith(t, meterdOptions{stripeBase: base})
	d.seed(t)
	if st := d.admin(t, http.MethodPatch, "/api/admin/accounts/acct_acme", `{"stripe_customer_id":"cus_acme"}`, nil); st != http.StatusOK {
		t.Fatalf("set customer: %d", st)
	}
	var rep struct {
		Charges int  `json:"charges"`
		OK      bool `json:"ok"`
		Lines   []struct {
			AccountID string `json:"account_id"`
			Status    string `json:"status"`
			Reason    string `json:"reason"`
			Error     string `json:"error"`
		} `json:"accounts"`
	}
	if st := d.admin(t, http.MethodPost, "/api/cron/process-overage", "", &rep); st != http.StatusOK || rep.Charges != 1 || !rep.OK {
		t.Fatalf("billing run: %d %+v", st, rep)
	}
	var ch struct {
		Charges []struct {
			StripeID string `json:"stripe_id"`
			Status   string `json:"status"`
		} `json:"charges"`
	}
	d.admin(t, http.MethodGet, "/api/admin/billing/charges", "", &ch)
	if len(ch.Charges) != 1 || ch.Charges[0].StripeID == "" {
		t.Fatalf("charges: %+v", ch)
	}
	signIn(t, ctx, d.HTTP.URL)
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS(`#health .badge.good`)))
	if txt := eval[string](t, ctx, `document.getElementById("health").textContent`); !strings.Contains(txt, "1 charges") {
		t.Errorf("health panel: %q", txt)
	}
	screenshot(t, ctx, "overview")
	run(t, ctx, chromedp.Navigate(d.HTTP.URL+"/ui/#/billing"),
		chromedp.WaitVisible(chromedp.CSS(`#month-charges table`)))
	txt := eval[string](t, ctx, `document.getElementById("month-charges").textContent`)
	if !strings.Contains(txt, ch.Charges[0].StripeID) || !strings.Contains(txt, ch.Charges[0].Status) {
		t.Errorf("charges table %q lacks %s / %s", txt, ch.Charges[0].StripeID, ch.Charges[0].Status)
	}
	// The reconcile report (issue 10) lists the billed account period.
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS(`#reconcile table`)))
	if txt := eval[string](t, ctx, `document.getElementById("reconcile").textContent`); !strings.Contains(txt, "acct_acme") {
		t.Errorf("reconcile panel %q lacks acct_acme", txt)
	}
	run(t, ctx, chromedp.Click(chromedp.ID("dry-run")), chromedp.WaitVisible(chromedp.CSS(`#dry-out p`)))
	if txt := eval[string](t, ctx, `document.getElementById("dry-out").textContent`); !strings.Contains(txt, "nothing was sent") {
		t.Errorf("dry run: %q", txt)
	}
	screenshot(t, ctx, "billing")
}
