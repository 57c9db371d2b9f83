package main_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCluster_OneBill: a Pro account (default plans: 100,000 included
// calls, 1,000 micro-dollars an overage call) makes 105,000 calls spread
// over three real nodes, so no node passes the limit alone and the
// cluster's overage is 5,000 calls = 500 cents. process-overage is called on all
// three at once: one node takes the billing lease and reaches Stripe,
// which makes the item but never answers (stallingStripe); the other two
// answer 409 naming the holder. The holder is killed with SIGKILL; a
// survivor resumes the open intent within 30 s with the same idempotency
// key, and Stripe holds one 500-cent item. A later run on a survivor
// charges nothing more. Before billing, every node's usage reads
// (current, history, endpoints, admin overview) answer for the cluster
// within the 2 s staleness bound.
// proCalls is the case: a Pro account (the default plan: 100,000
// included calls, $0.001 per overage call) makes 105,000 calls.
const proCalls = 105_000

func TestCluster_OneBill(t *testing.T) {
	dbURL, conn := mustClusterDB(t)
	stripe := newStallingStripe(t)
	ids := []string{"n1", "n2", "n3"}
	nodes := map[string]*proc{}
	dirs := map[string]string{}
	var list []*proc
	for _, id := range ids {
		dirs[id] = t.TempDir()
		p := startNode(t, dirs[id], dbURL, id, "--stripe-secret-key", "sk_test_cluster",
			"--stripe-api-base", stripe.srv.URL, "--cron-secret", "cron-cluster")
		nodes[id] = p
		list = append(list, p)
	}
	if code := do(t, "POST", list[0].base+"/api/admin/accounts", adminToken,
		map[string]string{"id": "pro1", "name": "Pro One", "plan": "pro", "stripe_customer_id": "cus_cluster"}, nil); code != 201 {
		t.Fatalf("create account: %d", code)
	}
	var key struct{ Key string }
	if code := do(t, "POST", list[0].base+"/api/admin/accounts/pro1/keys", adminToken, nil, &key); code != 201 {
		t.Fatalf("issue key: %d", code)
	}
	for _, n := range list[1:] {
		waitFor(t, time.Second, "key visible on "+n.base, func() bool { return keyWorks(n.base, key.Key) })
	}
	tl := spread(t, list, key.Key, proCalls, nil)
	if tl.allowed.Load() != proCalls {
		t.Fatalf("allowed %d of %d Pro calls", tl.allowed.Load(), proCalls)
	}
	loaded := time.Now()
	for _, n := range list { // every node answers for the cluster
		waitFor(t, 3*time.Second, "cluster-wide usage on "+n.base, func() bool { return clusterReadsAgree(t, n.base, key.Key) })
	}
	if d := time.Since(loaded); d > 2*time.Second {
		t.Fatalf("cluster-wide reads agreed only %v after the load, past the 2 s bound", d)
	}

	// process-overage on all three at once.
	type answer struct {
		node string
		code int
		body string
	}
	answers := make(chan answer, 3)
	for _, id := range ids {
		go func() { // the billing node's answer never comes: it is killed
			req, _ := http.NewRequest("POST", nodes[id].base+"/api/cron/process-overage", nil)
			req.Header.Set("Authorization", "Bearer cron-cluster")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{id, 0, err.Error()}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			answers <- answer{id, resp.StatusCode, string(body)}
		}()
	}
	select {
	case <-stripe.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no run reached Stripe")
	}
	var holder string
	if err := conn.QueryRow(context.Background(), `SELECT holder FROM meterd_billing_lease`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	billing, _, _ := strings.Cut(holder, "@")
	if nodes[billing] == nil {
		t.Fatalf("lease holder %q is no node", holder)
	}
	for range 2 { // the other two answer at once, naming the holder
		select {
		case a := <-answers:
			if a.node == billing || a.code != http.StatusConflict || !strings.Contains(a.body, "lease held by "+billing+"@") {
				t.Fatalf("node %s answered %d %q while %s bills", a.node, a.code, a.body, billing)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the nodes without the lease did not answer")
		}
	}

	nodes[billing].cmd.Process.Kill() // SIGKILL mid-charge
	nodes[billing].waitExit(t, 10*time.Second)
	killed := time.Now()
	took := waitFor(t, 30*time.Second, "a survivor completes the charge", func() bool {
		var open int
		conn.QueryRow(context.Background(), `SELECT count(*) FROM meterd_billing_intents WHERE open`).Scan(&open)
		var done int
		conn.QueryRow(context.Background(), `SELECT count(*) FROM meterd_billing_intents WHERE body LIKE '%"status":"done"%'`).Scan(&done)
		return open == 0 && done == 1
	})
	t.Logf("node %s billed and was killed; the charge completed elsewhere %v later", billing, took.Round(time.Millisecond))
	if since := time.Since(killed); since > 30*time.Second {
		t.Fatalf("takeover took %v", since)
	}
	if items, cents := stripe.billed(); items != 1 || cents != 500 {
		t.Fatalf("Stripe holds %d items, %d cents; want one item of 500", items, cents)
	}

	// A run on a survivor now finds nothing due.
	var survivor *proc
	for id, p := range nodes {
		if id != billing {
			survivor = p
		}
	}
	var rep struct {
		OK           bool  `json:"ok"`
		ChargedCents int64 `json:"charged_cents"`
	}
	// The survivor that resumed the charge may still hold the lease for a
	// moment (it releases it after recording the outcome): 409, retry.
	code := 0
	waitFor(t, 5*time.Second, "a run after the takeover", func() bool {
		code = do(t, "POST", survivor.base+"/api/cron/process-overage", "cron-cluster", nil, &rep)
		return code != http.StatusConflict
	})
	if code != 200 || !rep.OK || rep.ChargedCents != 0 {
		t.Fatalf("run after the takeover: %d %+v", code, rep)
	}
	stripe.mu.Lock()
	posts := stripe.posts
	stripe.mu.Unlock()
	if items, cents := stripe.billed(); items != 1 || cents != 500 {
		t.Fatalf("after a second run Stripe holds %d items, %d cents; want one item of 500", items, cents)
	}
	t.Logf("Stripe saw %d POSTs for one idempotency key", posts)

	// The killed node's disk cannot be billed offline beside the cluster.
	stdout, stderr, err := runMeterdCmd(t, []string{"STRIPE_SECRET_KEY=sk_test_cluster", "STRIPE_API_BASE=" + stripe.srv.URL},
		"bill", "--data-dir", dirs[billing])
	if err == nil || !strings.Contains(stderr, "belongs to a cluster node") {
		t.Fatalf("meterd bill on a cluster node's disk: %v\n%s\n%s", err, stdout, stderr)
	}
	if items, cents := stripe.billed(); items != 1 || cents != 500 {
		t.Fatalf("Stripe holds %d items, %d cents after the refused offline run", items, cents)
	}
}

// clusterReadsAgree reports whether base answers every usage read for
// the whole cluster: 6,000 calls today, all on GET /v1/items, 5,000 of
// them overage worth 500 cents.
func clusterReadsAgree(t *testing.T, base, key string) bool {
	var cur struct {
		APICalls     int64 `json:"api_calls"`
		OverageCalls int64 `json:"overage_calls"`
	}
	var hist struct {
		Days []struct {
			APICalls int64 `json:"api_calls"`
		} `json:"days"`
	}
	var eps struct {
		Endpoints []struct {
			Endpoint string `json:"endpoint"`
			APICalls int64  `json:"api_calls"`
		} `json:"endpoints"`
	}
	var ov struct {
		APICalls struct {
			Today int64 `json:"today"`
		} `json:"api_calls"`
		OverageRevenueCents int64 `json:"overage_revenue_cents"`
		AccountsInOverage   int64 `json:"accounts_in_overage"`
	}
	if do(t, "GET", base+"/api/usage/current", key, nil, &cur) != 200 || cur.APICalls != proCalls || cur.OverageCalls != proCalls-100_000 {
		return false
	}
	if do(t, "GET", base+"/api/usage/history?days=1", key, nil, &hist) != 200 || len(hist.Days) != 1 || hist.Days[0].APICalls != proCalls {
		return false
	}
	if do(t, "GET", base+"/api/usage/endpoints?days=1", key, nil, &eps) != 200 || len(eps.Endpoints) != 1 || eps.Endpoints[0].APICalls != proCalls {
		return false
	}
	return do(t, "GET", base+"/api/admin/analytics/overview", adminToken, nil, &ov) == 200 && ov.APICalls.Today == proCalls &&
		ov.OverageRevenueCents == 500 && ov.AccountsInOverage == 1
}
