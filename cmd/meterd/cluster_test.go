package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/migrations"
)

// mustClusterDB makes a migrated schema of METER_TEST_DATABASE_URL for this
// test alone (mustSchema) and returns its URL and a connection to it.
func mustClusterDB(t testing.TB) (string, *pgx.Conn) {
	t.Helper()
	dbURL := mustSchema(t)
	ctx := context.Background()
	if err := migrations.Up(ctx, dbURL); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return dbURL, conn
}

// startNode starts one cluster node with its own data directory.
func startNode(t *testing.T, dir, dbURL, id string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--cluster", "--database-url", dbURL, "--node-id", id,
		"--export-interval", "100ms"}, extra...)
	p := startServe(t, dir, args...)
	p.waitReady(t)
	return p
}

// tally counts the answers of a load run.
type tally struct {
	allowed, denied, unavailable, other, failed atomic.Int64
}

// trackKey sends one /v1/track for key and counts its answer.
func (tl *tally) trackKey(client *http.Client, base, key string) {
	body := `{"api_key":"` + key + `","endpoint":"/v1/items","method":"GET"}`
	resp, err := client.Post(base+"/v1/track", "application/json", strings.NewReader(body))
	if err != nil {
		tl.failed.Add(1)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case 200:
		tl.allowed.Add(1)
	case 429:
		tl.denied.Add(1)
	case 503:
		tl.unavailable.Add(1)
	default:
		tl.other.Add(1)
	}
}

// spread sends n calls from 30 clients, round-robin over the nodes; after
// half of them, midway (if set) runs once.
func spread(t *testing.T, nodes []*proc, key string, n int, midway func()) *tally {
	t.Helper()
	tl := &tally{}
	client := &http.Client{Timeout: 10 * time.Second}
	var next atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for c := 0; c < 30; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if midway != nil && i == int64(n/2) {
					once.Do(midway)
				}
				tl.trackKey(client, nodes[i%int64(len(nodes))].base, key)
			}
		}()
	}
	wg.Wait()
	if tl.other.Load() != 0 {
		t.Fatalf("%d answers were neither 200, 429 nor 503", tl.other.Load())
	}
	return tl
}

// grantedTotal is the cluster's grant for every period of the account.
func grantedTotal(t *testing.T, conn *pgx.Conn, account string) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(),
		`SELECT COALESCE(sum(granted), 0)::bigint FROM meterd_quota_grants WHERE account_id = $1`, account).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond every 10 ms for up to within and returns how long it
// took to hold; it fails the test if it never does.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, within)
	return 0
}

// keyWorks reports whether base accepts key (a usage read counts nothing).
func keyWorks(base, key string) bool {
	req, _ := http.NewRequest("GET", base+"/api/usage/current", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// TestCluster_ExactHardLimit: an account and key created on node 1; 3,000
// concurrent calls spread over three nodes admit exactly the Free plan's
// 1,000.
func TestCluster_ExactHardLimit(t *testing.T) {
	dbURL, conn := mustClusterDB(t)
	var nodes []*proc
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, startNode(t, t.TempDir(), dbURL, id))
	}
	key := setupAccountAt(t, nodes[0].base, "free1", "free")
	for _, n := range nodes[1:] {
		waitFor(t, time.Second, "key visible on "+n.base, func() bool { return keyWorks(n.base, key) })
	}
	tl := spread(t, nodes, key, 3000, nil)
	t.Logf("allowed %d denied %d unavailable %d failed %d", tl.allowed.Load(), tl.denied.Load(), tl.unavailable.Load(), tl.failed.Load())
	if tl.allowed.Load() != 1000 || tl.denied.Load() != 2000 {
		t.Fatalf("allowed %d, denied %d; want exactly 1000 and 2000", tl.allowed.Load(), tl.denied.Load())
	}
	if g := grantedTotal(t, conn, "free1"); g != 1000 {
		t.Fatalf("granted %d, want 1000", g)
	}
	// Every node answers for the whole cluster within the staleness bound.
	for _, n := range nodes {
		d := waitFor(t, 2*time.Second, "cluster-wide usage on "+n.base, func() bool {
			var cur struct {
				APICalls  int64 `json:"api_calls"`
				Remaining int64 `json:"remaining"`
			}
			do(t, "GET", n.base+"/api/usage/current?account_id=free1", adminToken, nil, &cur)
			return cur.APICalls == 1000 && cur.Remaining == 0
		})
		t.Logf("usage on %s equals the cluster total after %v", n.base, d)
	}
	var reg struct {
		Nodes []struct {
			ID            string    `json:"id"`
			Address       string    `json:"address"`
			LastHeartbeat time.Time `json:"last_heartbeat"`
			Alive         bool      `json:"alive"`
			LeasedTotal   int64     `json:"leased_total"`
		} `json:"nodes"`
	}
	if code := do(t, "GET", nodes[2].base+"/api/admin/cluster", adminToken, nil, &reg); code != 200 {
		t.Fatalf("GET /api/admin/cluster: %d", code)
	}
	var leased int64
	for _, n := range reg.Nodes {
		if !n.Alive || n.Address == "" || n.LastHeartbeat.IsZero() {
			t.Fatalf("registry row %+v", n)
		}
		leased += n.LeasedTotal
	}
	if len(reg.Nodes) != 3 || leased != 1000 {
		t.Fatalf("registry lists %d nodes holding %d in leases; want 3 and 1000", len(reg.Nodes), leased)
	}
}

// TestCluster_KillNode: kill -9 of one node in the middle of the load never
// lets the cluster pass the limit; restarting it settles its leases
// against its own ledger, and releasing another dead node settles against
// its exported calls, and after both exactly the limit has been admitted.
func TestCluster_KillNode(t *testing.T) {
	dbURL, conn := mustClusterDB(t)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	ids := []string{"n1", "n2", "n3"}
	var nodes []*proc
	for i := range ids {
		nodes = append(nodes, startNode(t, dirs[i], dbURL, ids[i]))
	}
	key := setupAccountAt(t, nodes[0].base, "free1", "free")
	for _, n := range nodes[1:] {
		waitFor(t, time.Second, "key visible", func() bool { return keyWorks(n.base, key) })
	}
	total := spread(t, nodes, key, 1200, func() {
		nodes[2].cmd.Process.Kill() // SIGKILL: node 3 keeps its leases
	}).allowed.Load()
	t.Logf("after kill -9 of n3: %d allowed, %d granted", total, grantedTotal(t, conn, "free1"))
	if total > 1000 {
		t.Fatalf("allowed %d > 1000", total)
	}

	// Path A: restart the killed node; it settles its leases against its
	// ledger before it leases again, so the rest of the limit is usable.
	nodes[2].waitExit(t, 10*time.Second)
	nodes[2] = startNode(t, dirs[2], dbURL, "n3")
	total += spread(t, nodes, key, 2000, nil).allowed.Load()
	t.Logf("after restart: %d allowed, %d granted", total, grantedTotal(t, conn, "free1"))
	// A call the killed node committed but could not answer is admitted
	// without the client knowing: the clients' count may fall short, the
	// ledgers' (exported) count must be exactly the limit.
	if total > 1000 {
		t.Fatalf("after restart and settlement %d allowed", total)
	}
	waitExported(t, conn, "free1", 1000)

	// Path B: a second account; kill node 2 while it holds allowance,
	// export its disk, release it.
	key2 := setupAccountAt(t, nodes[0].base, "free2", "free")
	for _, n := range nodes[1:] {
		waitFor(t, time.Second, "key visible", func() bool { return keyWorks(n.base, key2) })
	}
	total2 := spread(t, nodes, key2, 300, nil).allowed.Load() // far from the limit: n2 holds a chunk
	nodes[1].cmd.Process.Kill()
	nodes[1].waitExit(t, 10*time.Second)
	out, err := exec.Command(bin, "cluster", "release", "n2", "--database-url", dbURL).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "alive") {
		t.Fatalf("release of a node with a fresh heartbeat: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "export", "--once", "--data-dir", dirs[1], "--database-url", dbURL).CombinedOutput(); err != nil {
		t.Fatalf("export --once of n2's disk: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "cluster", "release", "n2", "--force", "--database-url", dbURL).CombinedOutput()
	if err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	}
	var rel struct {
		Settled []struct{ Leased, Exported, Returned int64 } `json:"settled"`
	}
	if err := json.Unmarshal(out, &rel); err != nil {
		t.Fatalf("release output: %v\n%s", err, out)
	}
	t.Logf("release: %s", bytes.TrimSpace(out))
	live := []*proc{nodes[0], nodes[2]}
	total2 += spread(t, live, key2, 2000, nil).allowed.Load()
	t.Logf("free2 after release: %d allowed, %d granted", total2, grantedTotal(t, conn, "free2"))
	if total2 > 1000 {
		t.Fatalf("free2: %d allowed after kill, export and release", total2)
	}
	waitExported(t, conn, "free2", 1000)
	var returned int64
	for _, st := range rel.Settled {
		if st.Returned != st.Leased-st.Exported {
			t.Fatalf("release settled %+v: returned is not leased minus exported", st)
		}
		returned += st.Returned
	}
	if returned <= 0 {
		t.Fatalf("release settled %+v; want allowance of free2 returned", rel.Settled)
	}
}

// waitExported waits until every node's exports hold exactly want allowed
// calls of the account (and never more), within 10 s.
func waitExported(t *testing.T, conn *pgx.Conn, account string, want int64) {
	t.Helper()
	var n int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM eco_api_usage
WHERE account_id = $1 AND decision = 'allowed'`, account).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > want {
			t.Fatalf("%s: %d allowed calls exported, limit %d", account, n, want)
		}
		if n == want {
			return
		}
	}
	t.Fatalf("%s: %d allowed calls exported, want exactly %d", account, n, want)
}

// TestCluster_SharedKeys: creation on one node is usable on the others
// within 1 s; a revocation on one is refused on the others within 1 s.
func TestCluster_SharedKeys(t *testing.T) {
	dbURL, _ := mustClusterDB(t)
	var nodes []*proc
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, startNode(t, t.TempDir(), dbURL, id))
	}
	for _, n := range nodes {
		waitFor(t, 2*time.Second, "/readyz ok on "+n.base, func() bool {
			resp, err := http.Get(n.base + "/readyz")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == 200 && strings.Contains(string(b), `"shared_state":"ok"`)
		})
	}
	key := setupAccountAt(t, nodes[0].base, "pro1", "pro")
	for _, n := range nodes[1:] {
		d := waitFor(t, time.Second, "creation visible on "+n.base, func() bool { return keyWorks(n.base, key) })
		t.Logf("creation visible on %s after %v", n.base, d)
	}
	var acct struct {
		Keys []struct{ ID string } `json:"keys"`
	}
	do(t, "GET", nodes[1].base+"/api/admin/accounts/pro1", adminToken, nil, &acct)
	if len(acct.Keys) != 1 {
		t.Fatalf("node 2 sees %d keys", len(acct.Keys))
	}
	if code := do(t, "DELETE", nodes[1].base+"/api/admin/keys/"+acct.Keys[0].ID, adminToken, nil, nil); code != 204 {
		t.Fatalf("revoke on node 2: %d", code)
	}
	for _, n := range []*proc{nodes[0], nodes[2]} {
		d := waitFor(t, time.Second, "revocation refused on "+n.base, func() bool { return !keyWorks(n.base, key) })
		t.Logf("revocation refused on %s after %v", n.base, d)
	}
	// An id taken on one node is taken everywhere.
	if code := do(t, "POST", nodes[2].base+"/api/admin/accounts", adminToken,
		map[string]string{"id": "pro1", "name": "again", "plan": "pro"}, nil); code != 409 {
		t.Fatalf("duplicate id on another node: %d, want 409", code)
	}
}

// pgGate is a loopback TCP relay to Postgres that the test can cut, to
// take Postgres away from one node without touching the shared server.
type pgGate struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newPGGate(t *testing.T, dbURL string) (*pgGate, string) {
	t.Helper()
	u, _ := url.Parse(dbURL)
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &pgGate{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, c, up)
			g.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(g.cut)
	u.Host = ln.Addr().String()
	return g, u.String()
}

// cut closes the relay and every connection through it.
func (g *pgGate) cut() {
	g.ln.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

// TestCluster_PostgresDown: with Postgres gone, a hard plan admits exactly
// the allowance already held, then answers 503 quota_unavailable with
// Retry-After; soft plans go on; /readyz says the node serves its local
// copy, also after a restart while Postgres is still away.
func TestCluster_PostgresDown(t *testing.T) {
	dbURL, conn := mustClusterDB(t)
	gate, gated := newPGGate(t, dbURL)
	dir := t.TempDir()
	n1 := startNode(t, dir, gated, "n1")
	free := setupAccountAt(t, n1.base, "free1", "free")
	pro := setupAccountAt(t, n1.base, "pro1", "pro")
	before := spread(t, []*proc{n1}, free, 10, nil)
	if before.allowed.Load() != 10 {
		t.Fatalf("before the cut: %d of 10 allowed", before.allowed.Load())
	}
	held := grantedTotal(t, conn, "free1") - 10
	if held <= 0 || held > 1000 {
		t.Fatalf("node holds %d", held)
	}
	gate.cut()
	after := spread(t, []*proc{n1}, free, int(held)+50, nil)
	if after.allowed.Load() != held || after.unavailable.Load() != 50 {
		t.Fatalf("with Postgres down: %d allowed (held %d), %d unavailable (want 50), %d denied",
			after.allowed.Load(), held, after.unavailable.Load(), after.denied.Load())
	}
	resp, err := http.Post(n1.base+"/v1/track", "application/json",
		strings.NewReader(`{"api_key":"`+free+`","endpoint":"/x","method":"GET"}`))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 503 || e.Error.Code != "quota_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("answer %d %q Retry-After %q", resp.StatusCode, e.Error.Code, resp.Header.Get("Retry-After"))
	}
	if tl := spread(t, []*proc{n1}, pro, 20, nil); tl.allowed.Load() != 20 {
		t.Fatalf("pro plan with Postgres down: %d of 20 allowed", tl.allowed.Load())
	}
	assertReadyLocalCopy(t, n1)
	// Admin writes change nothing anywhere while the shared state is away.
	var ae struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := do(t, "POST", n1.base+"/api/admin/accounts", adminToken,
		map[string]string{"id": "late", "name": "late", "plan": "pro"}, &ae); code != 503 || ae.Error.Code != "cluster_unavailable" {
		t.Fatalf("create account with Postgres down: %d %q, want 503 cluster_unavailable", code, ae.Error.Code)
	}
	if code := do(t, "GET", n1.base+"/api/admin/accounts/late", adminToken, nil, nil); code != 404 {
		t.Fatalf("refused account exists locally: %d", code)
	}
	if code := do(t, "GET", n1.base+"/api/admin/cluster", adminToken, nil, nil); code != 503 {
		t.Fatalf("GET /api/admin/cluster with Postgres down: %d, want 503", code)
	}

	// Restart while Postgres is still down: serves the local copy.
	n1.cmd.Process.Signal(os.Interrupt)
	n1.waitExit(t, 20*time.Second)
	n1 = startServe(t, dir, "--cluster", "--database-url", gated, "--node-id", "n1")
	n1.waitReady(t)
	if !keyWorks(n1.base, pro) {
		t.Fatal("restarted node without Postgres refuses a key from its local copy")
	}
	assertReadyLocalCopy(t, n1)
	if g := grantedTotal(t, conn, "free1"); g > 1000 {
		t.Fatalf("granted %d", g)
	}
}

func assertReadyLocalCopy(t *testing.T, p *proc) {
	t.Helper()
	waitFor(t, 5*time.Second, "/readyz reports the local copy", func() bool {
		var r struct {
			Checks map[string]json.RawMessage `json:"checks"`
		}
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &r)
		return resp.StatusCode == 200 && strings.Contains(string(b), "serving the local copy")
	})
}

// TestCluster_PostgresRestartUnderLoad terminates every Postgres backend of
// the three nodes again and again while they meter (what a Postgres
// restart does to them, without restarting the shared server): no
// acknowledged call is lost, each is in eco_api_usage once, and the hard
// limit holds.
func TestCluster_PostgresRestartUnderLoad(t *testing.T) {
	dbURL, conn := mustClusterDB(t)
	u, _ := url.Parse(dbURL)
	app := "meterd_" + u.Query().Get("search_path")
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	var nodes []*proc
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, startNode(t, t.TempDir(), u.String(), id))
	}
	free := setupAccountAt(t, nodes[0].base, "free1", "free")
	pro := setupAccountAt(t, nodes[0].base, "pro1", "pro")
	for _, n := range nodes[1:] {
		waitFor(t, time.Second, "keys visible", func() bool { return keyWorks(n.base, free) && keyWorks(n.base, pro) })
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	var freeAllowed, unavailable atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for c := 0; c < 24; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := pro
			if c%2 == 0 {
				key = free
			}
			body := []byte(`{"api_key":"` + key + `","endpoint":"/v1/items","method":"GET"}`)
			for i := c; ctx.Err() == nil; i++ {
				resp, err := client.Post(nodes[i%3].base+"/v1/track", "application/json", bytes.NewReader(body))
				if err != nil {
					continue
				}
				var out struct {
					EventID string `json:"event_id"`
				}
				json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					mu.Lock()
					acked[out.EventID] = true
					mu.Unlock()
					if key == free {
						freeAllowed.Add(1)
					}
				case 503:
					unavailable.Add(1)
				}
			}
		}()
	}
	kills := 0
	for ctx.Err() == nil {
		time.Sleep(300 * time.Millisecond)
		var n int
		conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n)
		kills += n
	}
	wg.Wait()
	t.Logf("%d calls acknowledged (%d free), %d answered 503, %d backends terminated", len(acked), freeAllowed.Load(), unavailable.Load(), kills)
	if kills == 0 || len(acked) == 0 {
		t.Fatal("the test terminated no backend or acknowledged no call")
	}
	if freeAllowed.Load() > 1000 {
		t.Fatalf("free: %d allowed", freeAllowed.Load())
	}
	ids := make([]string, 0, len(acked))
	for id := range acked {
		if id == "" {
			t.Fatal("a 200 answer without an event id")
		}
		ids = append(ids, id)
	}
	var found int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM eco_api_usage WHERE event_id = ANY($1)`, ids).Scan(&found); err != nil {
			t.Fatal(err)
		}
		if found == len(ids) || time.Now().After(deadline) {
			break
		}
	}
	if found != len(ids) {
		t.Fatalf("%d of %d acknowledged calls in eco_api_usage", found, len(ids))
	}
	waitExportedAtMost(t, conn, "free1", 1000)
}

// waitExportedAtMost checks the account's exported allowed calls never
// pass limit.
func waitExportedAtMost(t *testing.T, conn *pgx.Conn, account string, limit int64) {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM eco_api_usage
WHERE account_id = $1 AND decision = 'allowed'`, account).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n > limit {
		t.Fatalf("%s: %d allowed calls exported, limit %d", account, n, limit)
	}
}

// TestServe_ClusterFlags: cluster mode refuses what it cannot keep exact.
func TestServe_ClusterFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster"}, "needs --database-url"},
		{[]string{"--cluster", "--database-url", "postgres://u@127.0.0.1:1/db", "--durability", "async"}, "needs --durability sync"},
		{[]string{"--cluster", "--database-url", "postgres://u@127.0.0.1:1/db", "--cluster-fail", "maybe"}, "--cluster-fail"},
	} {
		args := append([]string{"serve", "--data-dir", t.TempDir()}, tc.args...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("meterd %v: %v, output %q; want an error with %q", tc.args, err, out, tc.want)
		}
	}
	out, err := exec.Command(bin, "cluster", "release").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Usage: meterd cluster release") {
		t.Errorf("meterd cluster release without a node: %v %s", err, out)
	}
}
