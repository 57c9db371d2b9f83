package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/cluster"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/meterd/meterd/migrations"
)

// mustDB makes a migrated schema for this test alone and returns a URL
// whose search_path points at it, and a connection to it.
func mustDB(tb testing.TB) (string, *pgx.Conn) {
	tb.Helper()
	base := os.Getenv("METER_TEST_DATABASE_URL")
	if base == "" {
		tb.Skip("METER_TEST_DATABASE_URL not set: skipping cluster integration test")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to METER_TEST_DATABASE_URL: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "meterd_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close(context.Background())
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	if err := migrations.Up(ctx, u.String()); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return u.String(), conn
}

// ledgerLocal is a real ledger as the cluster sees it (cmd/meterd has the
// same adapter).
type ledgerLocal struct{ *ledger.Ledger }

func (l ledgerLocal) LocalCalls(ctx context.Context, account string, start time.Time) (int64, error) {
	c, err := l.Counter(ctx, account, start)
	return c.Calls, err
}

// node is one in-process cluster member: a real ledger, a meter deciding
// through the cluster's leases, and its membership.
type node struct {
	id      string
	path    string
	ledger  *ledger.Ledger
	meter   *meter.Meter
	cluster *cluster.Cluster
}

// bigHard is a hard plan whose limit a benchmark does not reach.
const bigHard = `plans:
  bighard:
    name: bighard
    limit: 1000000000
    hard: true
`

func testPlans(tb testing.TB) *meter.Plans {
	tb.Helper()
	p, err := meter.ParsePlans([]byte(bigHard))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// mustNode opens (or reopens, with the same path) a node. Its Close is
// registered as cleanup unless the test crashes it first.
func mustNode(tb testing.TB, dbURL, id, path string, fail string) *node {
	tb.Helper()
	if path == "" {
		path = filepath.Join(tb.TempDir(), "meter.db")
	}
	l, err := ledger.Open(path, ledger.Options{NodeID: id})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := cluster.Open(cluster.Config{DatabaseURL: dbURL, NodeID: id, Address: id, Fail: fail,
		Local: ledgerLocal{l}})
	if err != nil {
		tb.Fatal(err)
	}
	m, err := meter.New(context.Background(), meter.Config{Store: l, Plans: testPlans(tb),
		Allowance: c.Leases(), Shared: c, Peers: c})
	if err != nil {
		tb.Fatal(err)
	}
	c.Start(m)
	n := &node{id: id, path: path, ledger: l, meter: m, cluster: c}
	tb.Cleanup(func() { n.close(tb) })
	return n
}

// close stops the node gracefully: allowance returned, ledger closed.
func (n *node) close(tb testing.TB) {
	if n.cluster != nil {
		if err := n.cluster.Close(context.Background()); err != nil {
			tb.Errorf("close %s: %v", n.id, err)
		}
		n.cluster = nil
	}
	if n.ledger != nil {
		n.ledger.Close()
		n.ledger = nil
	}
}

// crash stops the node as kill -9 would as far as Postgres is concerned:
// its held allowance is never returned. (The ledger is closed cleanly;
// what a killed process loses from its ledger is covered by cmd/meterd's
// process tests.)
func (n *node) crash(tb testing.TB) {
	n.cluster.Abandon()
	n.cluster = nil
	n.ledger.Close()
	n.ledger = nil
}

func track(n *node, account string) (meter.Result, error) {
	return n.meter.Track(context.Background(), meter.Call{AccountID: account, Endpoint: "/x", Method: "GET"})
}

// waitAccount waits until every node knows the account.
func waitAccount(tb testing.TB, id string, nodes ...*node) {
	tb.Helper()
	for _, n := range nodes {
		deadline := time.Now().Add(2 * time.Second)
		for {
			if _, err := n.meter.Account(id); err == nil {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("account %s never reached %s", id, n.id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func scanInt(tb testing.TB, conn *pgx.Conn, sql string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return n
}

// nopLocal is an empty ledger view, for a node that never gets to settle.
type nopLocal struct{}

func (nopLocal) LocalCalls(context.Context, string, time.Time) (int64, error) { return 0, nil }
func (nopLocal) Cursor(context.Context, string) (uint64, error)               { return 0, nil }
func (nopLocal) SetCursor(context.Context, string, uint64) error              { return nil }
