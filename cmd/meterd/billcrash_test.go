package main_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// stallingStripe creates invoice items like Stripe (one per idempotency
// key; a repeated key gets the first answer) but stalls its answer to the
// first request until the client goes away: the charge is made, the
// process never learns it.
type stallingStripe struct {
	srv     *httptest.Server
	entered chan struct{}

	mu      sync.Mutex
	items   map[string]int64 // idempotency key -> amount
	forms   map[string]url.Values
	order   []string
	posts   int
	stalled bool
}

func newStallingStripe(t *testing.T) *stallingStripe {
	s := &stallingStripe{items: map[string]int64{}, forms: map[string]url.Values{}, entered: make(chan struct{}, 1)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v1/invoiceitems" {
			s.list(w)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/v1/invoiceitems" {
			http.Error(w, `{"error":{"type":"invalid_request_error","message":"unexpected"}}`, http.StatusNotFound)
			return
		}
		r.ParseForm()
		key := r.Header.Get("Idempotency-Key")
		var amount int64
		json.Unmarshal([]byte(r.PostForm.Get("amount")), &amount)
		s.mu.Lock()
		s.posts++
		if _, ok := s.items[key]; !ok {
			s.items[key], s.forms[key] = amount, r.PostForm
			s.order = append(s.order, key)
		}
		stall := !s.stalled
		s.stalled = true
		s.mu.Unlock()
		if stall {
			s.entered <- struct{}{}
			<-r.Context().Done() // the charge is made; the answer never leaves
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"ii_` + key + `","object":"invoiceitem","amount":` + r.PostForm.Get("amount") + `}`))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// list answers GET /v1/invoiceitems with every item and its metadata, on
// one page.
func (s *stallingStripe) list(w http.ResponseWriter) {
	s.mu.Lock()
	data := []map[string]any{}
	for _, key := range s.order {
		md := map[string]string{}
		for k, v := range s.forms[key] {
			if strings.HasPrefix(k, "metadata[") && strings.HasSuffix(k, "]") {
				md[k[len("metadata["):len(k)-1]] = v[0]
			}
		}
		data = append(data, map[string]any{"id": "ii_" + key, "object": "invoiceitem", "amount": s.items[key],
			"customer": s.forms[key].Get("customer"), "metadata": md})
	}
	s.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"object": "list", "url": "/v1/invoiceitems", "has_more": false, "data": data})
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func (s *stallingStripe) billed() (items int, cents int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.items {
		cents += a
	}
	return len(s.items), cents
}

// TestBill_KilledMidCharge SIGKILLs meterd while Stripe holds its first
// charge: Stripe made the item, the ledger has an open intent and a lease
// nobody renews. The restarted process must run billing again within 30 s
// (the short lease lapses; the open intent is retried with its key) and
// the run must complete without charging twice.
func TestBill_KilledMidCharge(t *testing.T) {
	dir := t.TempDir()
	plans := filepath.Join(dir, "plans.yaml")
	if err := os.WriteFile(plans, []byte("plans:\n  pro:\n    limit: 10\n    overage_micros: 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stripe := newStallingStripe(t)
	args := []string{"--plans", plans, "--stripe-secret-key", "sk_test_crash", "--stripe-api-base", stripe.srv.URL,
		"--cron-secret", "cron-test-secret", "--service-token", "svc-crash-test"}
	p := startServe(t, dir, args...)
	p.waitReady(t)
	if code := do(t, "POST", p.base+"/api/admin/accounts", adminToken,
		map[string]string{"id": "pro1", "name": "Pro One", "plan": "pro", "stripe_customer_id": "cus_crash"}, nil); code != 201 {
		t.Fatalf("create account: %d", code)
	}
	for range 10 + 500 {
		if code := do(t, "POST", p.base+"/v1/track", "svc-crash-test", map[string]string{"account_id": "pro1", "endpoint": "/x", "method": "GET"}, nil); code != 200 {
			t.Fatalf("track: %d", code)
		}
	}
	go func() { // the run that will die mid-charge; its answer never comes
		req, _ := http.NewRequest("POST", p.base+"/api/cron/process-overage", nil)
		req.Header.Set("Authorization", "Bearer cron-test-secret")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-stripe.entered:
	case <-time.After(15 * time.Second):
		t.Fatalf("the run never reached Stripe:\n%s", p.stderr)
	}
	p.cmd.Process.Kill() // SIGKILL mid-charge
	p.waitExit(t, 10*time.Second)
	killed := time.Now()

	p2 := startServe(t, dir, args...)
	p2.waitReady(t)
	var rep struct {
		OK           bool  `json:"ok"`
		ChargedCents int64 `json:"charged_cents"`
	}
	for {
		code := do(t, "POST", p2.base+"/api/cron/process-overage", "cron-test-secret", nil, &rep)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusConflict || time.Since(killed) > 30*time.Second {
			t.Fatalf("run after the crash: %d after %v\n%s", code, time.Since(killed), p2.stderr)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("a run completed %v after the kill", time.Since(killed).Round(time.Millisecond))
	if !rep.OK {
		t.Fatalf("run after the crash: %+v\n%s", rep, p2.stderr)
	}
	if items, cents := stripe.billed(); items != 1 || cents != 50 {
		t.Fatalf("Stripe holds %d items, %d cents; want 1 item of 50", items, cents)
	}
	var charges struct {
		BilledCents  int64 `json:"billed_cents"`
		PendingCents int64 `json:"pending_cents"`
	}
	if code := do(t, "GET", p2.base+"/api/admin/billing/charges", adminToken, nil, &charges); code != 200 ||
		charges.BilledCents != 50 || charges.PendingCents != 0 {
		t.Fatalf("charges: %d %+v", code, charges)
	}
	var recon struct {
		Differences int `json:"differences"`
		Accounts    []struct {
			StripeBilledCents int64 `json:"stripe_billed_cents"`
			LedgerBilledCents int64 `json:"ledger_billed_cents"`
		} `json:"accounts"`
	}
	if code := do(t, "GET", p2.base+"/api/admin/billing/reconcile", adminToken, nil, &recon); code != 200 ||
		recon.Differences != 0 || len(recon.Accounts) != 1 || recon.Accounts[0].StripeBilledCents != 50 {
		t.Fatalf("reconcile: %d %+v", code, recon)
	}
	p2.cmd.Process.Signal(os.Interrupt)
	if err := p2.waitExit(t, 15*time.Second); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p2.stderr)
	}
	stdout, stderr, err := runMeterdCmd(t, []string{"STRIPE_SECRET_KEY=sk_test_crash", "STRIPE_API_BASE=" + stripe.srv.URL},
		"bill", "--data-dir", dir, "--plans", plans, "--reconcile")
	if err != nil || !strings.Contains(stdout, "1 account periods, 0 differences") {
		t.Fatalf("bill --reconcile: %v\n%s\n%s", err, stdout, stderr)
	}
}

// `meterd bill --dry-run` needs no Stripe key and shows the money at stake
// for a Pro account without a Stripe customer.
func TestBill_DryRunShowsAccountWithoutCustomer(t *testing.T) {
	dir := t.TempDir()
	plans := filepath.Join(dir, "plans.yaml")
	if err := os.WriteFile(plans, []byte("plans:\n  pro:\n    limit: 10\n    overage_micros: 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, dir, "--plans", plans, "--service-token", "svc-crash-test")
	p.waitReady(t)
	if code := do(t, "POST", p.base+"/api/admin/accounts", adminToken,
		map[string]string{"id": "nocus", "name": "No Customer", "plan": "pro"}, nil); code != 201 {
		t.Fatalf("create account: %d", code)
	}
	for range 10 + 300 {
		if code := do(t, "POST", p.base+"/v1/track", "svc-crash-test", map[string]string{"account_id": "nocus", "endpoint": "/x", "method": "GET"}, nil); code != 200 {
			t.Fatalf("track: %d", code)
		}
	}
	var prev struct {
		Accounts []struct {
			AccountID  string `json:"account_id"`
			NoCustomer bool   `json:"no_customer"`
			DueCents   int64  `json:"due_cents"`
		} `json:"accounts"`
	}
	if code := do(t, "GET", p.base+"/api/admin/billing/preview", adminToken, nil, &prev); code != 200 ||
		len(prev.Accounts) != 1 || !prev.Accounts[0].NoCustomer || prev.Accounts[0].DueCents != 30 {
		t.Fatalf("preview without a Stripe key: %d %+v", code, prev)
	}
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.waitExit(t, 15*time.Second); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.stderr)
	}
	stdout, stderr, err := runMeterdCmd(t, nil, "bill", "--data-dir", dir, "--plans", plans, "--dry-run")
	if err != nil || !strings.Contains(stdout, "nocus") || !strings.Contains(stdout, "300") ||
		!strings.Contains(stdout, "0.30") || !strings.Contains(stdout, "no stripe_customer_id") {
		t.Fatalf("dry run: %v\n%s\n%s", err, stdout, stderr)
	}
}
