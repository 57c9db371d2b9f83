package cluster_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/cluster"
	"github.com/meterd/meterd/export/postgres"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
)

func TestLeases_ExactAcrossNodes(t *testing.T) {
	dbURL, conn := mustDB(t)
	n1 := mustNode(t, dbURL, "n1", "", "")
	n2 := mustNode(t, dbURL, "n2", "", "")
	n3 := mustNode(t, dbURL, "n3", "", "")
	if _, err := n1.meter.CreateAccount(context.Background(), meter.Account{ID: "free1", Name: "f", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	waitAccount(t, "free1", n2, n3)
	nodes := []*node{n1, n2, n3}
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 60; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				res, err := track(nodes[(g+i)%3], "free1")
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
		t.Fatalf("allowed %d denied %d; want 1000 and 2000", allowed.Load(), denied.Load())
	}
	var trips int64
	for _, n := range nodes {
		trips += n.cluster.Leases().RoundTrips()
	}
	t.Logf("draining a Free plan over 3 nodes: %d Postgres round trips for 3,000 decisions", trips)
	if g := scanInt(t, conn, `SELECT granted FROM meterd_quota_grants WHERE account_id = 'free1'`); g != 1000 {
		t.Fatalf("granted %d", g)
	}
	if l := scanInt(t, conn, `SELECT sum(granted)::bigint FROM meterd_quota_leases WHERE account_id = 'free1'`); l != 1000 {
		t.Fatalf("leases hold %d, want 1000", l)
	}
}

// TestLeases_ReturnAndSettle: a graceful stop returns what the node holds;
// after a crash, the node's next start settles its lease against its own
// ledger before leasing again.
func TestLeases_ReturnAndSettle(t *testing.T) {
	dbURL, conn := mustDB(t)
	granted := func() int64 {
		return scanInt(t, conn, `SELECT COALESCE(sum(granted), 0)::bigint FROM meterd_quota_grants WHERE account_id = 'free1'`)
	}
	n1 := mustNode(t, dbURL, "n1", "", "")
	n1.meter.CreateAccount(context.Background(), meter.Account{ID: "free1", Name: "f", Plan: "free"})
	for i := 0; i < 10; i++ {
		if res, err := track(n1, "free1"); err != nil || !res.Allowed {
			t.Fatalf("call %d: %+v %v", i, res, err)
		}
	}
	if g := granted(); g <= 10 {
		t.Fatalf("granted %d: the node leased no chunk", g)
	}
	n1.close(t)
	if g := granted(); g != 10 {
		t.Fatalf("after a graceful stop %d granted, want the 10 spent", g)
	}

	n1 = mustNode(t, dbURL, "n1", n1.path, "")
	for i := 0; i < 5; i++ {
		track(n1, "free1")
	}
	held := granted() - 15
	if held <= 0 {
		t.Fatalf("no allowance held (granted %d)", granted())
	}
	n1.crash(t)
	if g := granted(); g != 15+held {
		t.Fatalf("after a crash %d granted, want %d (the held allowance stays counted)", g, 15+held)
	}
	n1 = mustNode(t, dbURL, "n1", n1.path, "")
	if res, err := track(n1, "free1"); err != nil || !res.Allowed {
		t.Fatalf("after restart: %+v %v", res, err)
	}
	n1.close(t)
	if g := granted(); g != 16 {
		t.Fatalf("after restart, one call and a stop: %d granted, want 16", g)
	}
}

// TestRelease settles a crashed node against its exported calls.
func TestRelease(t *testing.T) {
	dbURL, conn := mustDB(t)
	ctx := context.Background()
	n1 := mustNode(t, dbURL, "n1", "", "")
	n2 := mustNode(t, dbURL, "n2", "", "")
	n1.meter.CreateAccount(ctx, meter.Account{ID: "free1", Name: "f", Plan: "free"})
	waitAccount(t, "free1", n2)
	for i := 0; i < 7; i++ {
		track(n2, "free1")
	}
	for i := 0; scanInt(t, conn, `SELECT count(*) FROM meterd_nodes WHERE node_id = 'n2'`) == 0; i++ {
		if i == 200 {
			t.Fatal("n2 never registered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := cluster.Release(ctx, conn, "n2", false); !errors.Is(err, cluster.ErrNodeAlive) {
		t.Fatalf("release of a live node: %v, want ErrNodeAlive", err)
	}
	leased := scanInt(t, conn, `SELECT granted FROM meterd_quota_leases WHERE node_id = 'n2'`)
	exp, err := postgres.New(n2.ledger, postgres.Config{DatabaseURL: dbURL}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exp.ExportOnce(ctx); err != nil {
		t.Fatal(err)
	}
	exp.Close()
	n2.crash(t)
	out, err := cluster.Release(ctx, conn, "n2", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Exported != 7 || out[0].Leased != leased || out[0].Returned != leased-7 {
		t.Fatalf("release: %+v (leased %d)", out, leased)
	}
	if g := scanInt(t, conn, `SELECT granted FROM meterd_quota_grants WHERE account_id = 'free1'`); g != 7 {
		t.Fatalf("granted %d after release, want the 7 exported", g)
	}
	if n := scanInt(t, conn, `SELECT count(*) FROM meterd_nodes WHERE node_id = 'n2'`); n != 0 {
		t.Fatal("released node still registered")
	}
}

// TestLeases_FailModes: with Postgres unreachable and nothing held, closed
// refuses (ErrQuotaUnavailable) and open admits.
func TestLeases_FailModes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "postgres://postgres@" + ln.Addr().String() + "/none?sslmode=disable"
	ln.Close()
	p := meter.Period{}
	for _, tc := range []struct {
		fail  string
		admit bool
	}{{cluster.FailClosed, false}, {cluster.FailOpen, true}} {
		t.Run(tc.fail, func(t *testing.T) {
			c, err := cluster.Open(cluster.Config{DatabaseURL: dead, NodeID: "n1", Fail: tc.fail, Local: nopLocal{}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			ok, err := c.Leases().Take(context.Background(), "free1", p, 1000)
			if ok != tc.admit || (err != nil) == tc.admit {
				t.Fatalf("Take = %v, %v", ok, err)
			}
			if !tc.admit && !errors.Is(err, meter.ErrQuotaUnavailable) {
				t.Fatalf("err = %v, want ErrQuotaUnavailable", err)
			}
			ready, detail := c.Ready(context.Background())
			if !ready || detail.(map[string]any)["error"] == nil {
				t.Fatalf("readiness %v %v: want ready, with the error shown", ready, detail)
			}
		})
	}
}

// TestPeers_Staleness: a call counted on one node shows in another node's
// quota within StalenessBound.
func TestPeers_Staleness(t *testing.T) {
	dbURL, _ := mustDB(t)
	n1 := mustNode(t, dbURL, "n1", "", "")
	n2 := mustNode(t, dbURL, "n2", "", "")
	n1.meter.CreateAccount(context.Background(), meter.Account{ID: "pro1", Name: "p", Plan: "pro"})
	waitAccount(t, "pro1", n2)
	for round := 1; round <= 3; round++ {
		for i := 0; i < 10; i++ {
			if _, err := track(n2, "pro1"); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		for {
			q, err := n1.meter.Quota("pro1")
			if err != nil {
				t.Fatal(err)
			}
			if q.Calls == int64(10*round) {
				t.Logf("round %d: node 1 saw node 2's calls after %v", round, time.Since(start))
				break
			}
			if time.Since(start) > cluster.StalenessBound {
				t.Fatalf("round %d: node 1 reads %d calls after %v, want %d", round, q.Calls, cluster.StalenessBound, 10*round)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Node 2's own read is exact at once: its own counts plus node 1's zero.
	if q, _ := n2.meter.Quota("pro1"); q.Calls != 30 {
		t.Fatalf("node 2 reads %d", q.Calls)
	}
}

// TestAdopt: a single node's accounts and keys reach the cluster when it
// first joins, and only then.
func TestAdopt(t *testing.T) {
	dbURL, conn := mustDB(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meter.db")
	l, err := ledger.Open(path, ledger.Options{NodeID: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	solo, err := meter.New(ctx, meter.Config{Store: l, Plans: testPlans(t)})
	if err != nil {
		t.Fatal(err)
	}
	solo.CreateAccount(ctx, meter.Account{ID: "old1", Name: "o", Plan: "pro"})
	_, plaintext, err := solo.IssueKey(ctx, "old1")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()

	n1 := mustNode(t, dbURL, "solo", path, "")
	n2 := mustNode(t, dbURL, "n2", "", "")
	waitAccount(t, "old1", n2)
	deadline := time.Now().Add(time.Second)
	for {
		if id, err := n2.meter.AccountForKey(plaintext); err == nil && id == "old1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the adopted key does not authenticate on node 2 within 1 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Adoption happens once per ledger: a restart offers nothing again.
	rev := scanInt(t, conn, `SELECT revision FROM meterd_revision`)
	n1.close(t)
	n1 = mustNode(t, dbURL, "solo", path, "")
	time.Sleep(300 * time.Millisecond)
	if r := scanInt(t, conn, `SELECT revision FROM meterd_revision`); r != rev {
		t.Fatalf("restart wrote %d revisions", r-rev)
	}
}
