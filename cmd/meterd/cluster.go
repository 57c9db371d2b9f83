package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/cluster"
	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
)

// ClusterConfig configures cluster mode of `meterd serve`.
type ClusterConfig struct {
	// Cluster joins the cluster whose shared state lives at DatabaseURL.
	Cluster bool
	// ClusterFail is what hard-limited calls get when no allowance can be
	// leased: "closed" (503 quota_unavailable) or "open" (local decision).
	ClusterFail string
	// ClusterAddress is the address other nodes and operators see in the
	// registry (default: --listen).
	ClusterAddress string
}

func (c *ClusterConfig) bindClusterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Cluster, "cluster", envBool("METER_CLUSTER", false), "join the cluster whose shared state is in --database-url (env METER_CLUSTER)")
	fs.StringVar(&c.ClusterFail, "cluster-fail", env("METER_CLUSTER_FAIL", cluster.FailClosed), "hard-limited calls when Postgres is unreachable and no allowance is held: closed (503) or open (admit locally) (env METER_CLUSTER_FAIL)")
	fs.StringVar(&c.ClusterAddress, "cluster-address", env("METER_CLUSTER_ADDRESS", ""), "this node's address in the cluster registry; default --listen (env METER_CLUSTER_ADDRESS)")
}

// validateCluster checks cluster mode's needs: the shared database, and
// sync durability, without which a killed node's acknowledged calls could
// be missing from its ledger when its leases are settled against it.
func (c *Config) validateCluster() error {
	if !c.Cluster {
		return nil
	}
	if c.DatabaseURL == "" {
		return errors.New("--cluster: needs --database-url (the cluster's shared Postgres)")
	}
	if c.Durability != "sync" {
		return errors.New("--cluster: needs --durability sync (leases are settled against the ledger)")
	}
	if c.ClusterFail != cluster.FailClosed && c.ClusterFail != cluster.FailOpen {
		return fmt.Errorf("--cluster-fail: must be closed or open, not %q", c.ClusterFail)
	}
	return nil
}

// ledgerLocal is the local ledger as the cluster sees it.
type ledgerLocal struct{ *ledger.Ledger }

func (l ledgerLocal) LocalCalls(ctx context.Context, account string, periodStart time.Time) (int64, error) {
	c, err := l.Counter(ctx, account, periodStart)
	return c.Calls, err
}

// openCluster prepares cluster membership before the meter is built (the
// meter takes its leases); it reaches Postgres only from its loops, so a
// node starting while Postgres is down serves its local copy.
func (m *Main) openCluster(reg prometheus.Registerer) error {
	c := &m.Config
	if !c.Cluster {
		return nil
	}
	addr := c.ClusterAddress
	if addr == "" {
		addr = c.Listen
	}
	cl, err := cluster.Open(cluster.Config{DatabaseURL: c.DatabaseURL, NodeID: m.ledger.NodeID(),
		Address: addr, Fail: c.ClusterFail, Local: ledgerLocal{m.ledger}, Backlog: m.exportBacklog, Usage: m.ledger,
		Logger: m.log, Registerer: reg})
	if err != nil {
		return err
	}
	m.cluster = cl
	return nil
}

// clusterPorts are the meter's cluster ports (all nil without a cluster).
func (m *Main) clusterPorts() (meter.Allowance, meter.SharedState, meter.Peers) {
	if m.cluster == nil {
		return nil, nil, nil
	}
	return m.cluster.Leases(), m.cluster, m.cluster
}

// startCluster runs heartbeat and change feed once the meter exists.
func (m *Main) startCluster(api *httpapi.Server) {
	if m.cluster == nil {
		return
	}
	m.cluster.Start(m.meter)
	api.AddReadiness("cluster", m.cluster.Ready)
	api.AddClusterRoutes(m.cluster)
	m.log.Info("cluster mode", "node_id", m.ledger.NodeID(), "fail", m.Config.ClusterFail)
}

// closeCluster returns the allowance this node holds; the servers have
// stopped deciding by now.
func (m *Main) closeCluster() error {
	if m.cluster == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := m.cluster.Close(ctx)
	m.cluster = nil
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// exportBacklog is the export backlog for the registry (0 without export).
func (m *Main) exportBacklog(ctx context.Context) int64 {
	if m.exporter == nil {
		return 0
	}
	n, _, err := m.exporter.Backlog(ctx)
	if err != nil {
		return -1
	}
	return int64(n)
}

const clusterUsage = `Usage: meterd cluster release NODE --database-url URL [--force]

Settles the quota leases of a dead node against the calls it exported:
its allowed calls found in eco_api_usage stay counted, the rest of its
allowance goes back to the cluster, and the node leaves the registry.
Calls it acknowledged but never exported are not known to Postgres: if
its disk survives, run 'meterd export --once --data-dir DIR' on it first.
A node with a recent heartbeat is refused unless --force.

Flags:
`

// runCluster implements `meterd cluster release`.
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("meterd cluster", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), clusterUsage); fs.PrintDefaults() }
	url := fs.String("database-url", env("METER_DATABASE_URL", ""), "the cluster's Postgres URL (env METER_DATABASE_URL)")
	force := fs.Bool("force", false, "release even if the node's heartbeat is recent")
	if len(args) == 0 || args[0] != "release" {
		// -h, --help, or nothing: parseFlags prints the help (exit 0) or
		// the usage error (exit 2).
		if err := parseFlags(fs, args, stdout, stderr); err != nil {
			return err
		}
		return fmt.Errorf("cluster: want 'release NODE'%w", usageMark)
	}
	if len(args) < 2 {
		fmt.Fprintln(stderr, "meterd cluster release: name the NODE to release")
		fs.SetOutput(stderr)
		fs.Usage()
		return errUsage
	}
	node := args[1]
	if err := parseFlags(fs, args[2:], stdout, stderr); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("cluster release: --database-url (or METER_DATABASE_URL) is required")
	}
	conn, err := pgx.Connect(ctx, *url)
	if err != nil {
		return fmt.Errorf("cluster release: %w", err)
	}
	defer conn.Close(context.Background())
	out, err := cluster.Release(ctx, conn, node, *force)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"node": node, "settled": out})
}

// clusterRetryInterval is how often, in cluster mode, each node looks for
// billing intents a dead billing node left open: with the 15 s lease, a
// survivor resumes them within about 25 s of a kill -9.
const clusterRetryInterval = 5 * time.Second

// billingService builds the billing service: over the ledger on a single
// node; in cluster mode over the shared Postgres store, which bills the
// whole cluster's counts and lets one node at a time hold the lease.
func (m *Main) billingService(reg prometheus.Registerer) (*billing.Service, error) {
	c := &m.Config.BillingConfig
	if m.cluster == nil {
		return c.service(m.ledger, m.meter, m.log, reg)
	}
	planOf := func(id string) (meter.Plan, bool) {
		q, err := m.meter.Quota(id)
		return q.Plan, err == nil
	}
	return billing.New(billing.Config{SecretKey: c.StripeSecretKey, APIBase: c.StripeAPIBase,
		Currency: c.Currency, Store: m.cluster.Billing(m.ledger, planOf), Accounts: m.meter, Logger: m.log,
		Registerer: reg, Grace: c.BillingGrace, Notices: m.meter, Owner: m.ledger.NodeID(),
		RetryInterval: clusterRetryInterval})
}

// usageReader answers /api/usage/history, /api/usage/endpoints and the
// overview's call totals: the ledger, or in cluster mode the ledger plus
// the other nodes' published day rows.
func (m *Main) usageReader() httpapi.UsageReader {
	if m.cluster == nil {
		return m.ledger
	}
	return m.cluster.Usage(m.ledger)
}

// billedReader lists billing intents for the overview: the ledger's, or
// in cluster mode the shared ones in Postgres.
func (m *Main) billedReader() httpapi.BilledReader {
	if m.cluster == nil {
		return m.ledger
	}
	return m.cluster.Billing(m.ledger, nil)
}

// errClusterLedger: `meterd bill` was pointed at a cluster node's ledger.
var errClusterLedger = errors.New("meterd bill: this ledger belongs to a cluster node, whose billing lives in the cluster's Postgres; " +
	"bill through any running node instead")

// refuseClusterLedger stops offline billing on a ledger that joined a
// cluster: it would bill (or compare) this node's calls alone, beside the
// shared intents, and its intent keys would collide with the cluster's.
func refuseClusterLedger(ctx context.Context, l *ledger.Ledger, listen string) error {
	for _, name := range []string{cluster.RevisionCursor, cluster.AdoptedCursor} {
		n, err := l.Cursor(ctx, name)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w:\n  curl -X POST -H \"Authorization: Bearer $METER_CRON_SECRET\" http://%s/api/cron/process-overage", errClusterLedger, listen)
		}
	}
	return nil
}
