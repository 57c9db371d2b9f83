package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Fail modes: what a node does with a hard-limited call when it holds no
// allowance and cannot reach Postgres for more.
const (
	// FailClosed refuses the call (503 quota_unavailable): never over-admit.
	FailClosed = "closed"
	// FailOpen admits it from the node's own counters, as a single node
	// would: the cluster may then pass the limit by up to the limit on each
	// node that is cut off.
	FailOpen = "open"
)

// Defaults of Config's durations.
const (
	DefaultHeartbeat    = time.Second
	DefaultSyncInterval = 250 * time.Millisecond
	// DeadAfter is how long without a heartbeat makes a node presumed dead
	// in the registry (and releasable without --force).
	DeadAfter = 10 * time.Second
	// exhaustedRecheck is how long a node trusts "the limit is all
	// granted" before asking again: denials stay free of round trips,
	// and allowance another node returns is seen within this.
	exhaustedRecheck = time.Second
	// opTimeout bounds one Postgres operation on the request path.
	opTimeout = 2 * time.Second
)

// Local is what the cluster needs from this node's own ledger.
type Local interface {
	// LocalCalls is this node's allowed calls of the account in the period
	// (the ledger's counter), against which its own leases are settled.
	LocalCalls(ctx context.Context, accountID string, periodStart time.Time) (int64, error)
	// Cursor and SetCursor keep the applied revision across restarts.
	Cursor(ctx context.Context, name string) (uint64, error)
	SetCursor(ctx context.Context, name string, seq uint64) error
}

// Applier is the node's meter as the cluster sees it (*meter.Meter is
// one): it applies replicated accounts and keys, and reports this node's
// own counts for publication.
type Applier interface {
	ApplyAccount(ctx context.Context, a meter.Account) error
	ApplyKey(ctx context.Context, k meter.APIKey) error
	Quotas() []meter.Quota
	KeysOf(accountID string) []meter.APIKey
}

// Config configures a Cluster. DatabaseURL, NodeID and Local are required.
type Config struct {
	DatabaseURL string
	NodeID      string
	// Address is how other nodes and operators reach this node's API.
	Address string
	// Fail is FailClosed (default) or FailOpen.
	Fail  string
	Local Local
	// Backlog reports this node's export backlog for the registry (nil: 0).
	Backlog func(ctx context.Context) int64
	// Heartbeat (default 1 s) and SyncInterval (default 250 ms, the bound
	// on how late another node's admin change is applied here).
	Heartbeat    time.Duration
	SyncInterval time.Duration
	// PublishInterval (default DefaultPublishInterval) paces the exchange
	// of per-node counts behind cluster-wide reads.
	PublishInterval time.Duration
	// Usage is this node's daily usage; with it, the day rows of accounts
	// whose counts changed are published with the counts (nil: none, and
	// cluster-wide history reads see only what others published).
	Usage      UsageSource
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// RevisionCursor is the ledger cursor holding the last applied revision.
const RevisionCursor = "cluster_revision"

// Cluster is one node's membership of a cluster.
type Cluster struct {
	cfg  Config
	db   *pgxpool.Pool
	log  *slog.Logger
	node string

	leases *Leases
	peers  peerCounts

	// liveNodes is the count of nodes with a recent heartbeat (>= 1).
	liveNodes atomic.Int64
	// applied is the newest revision applied to the local ledger.
	applied atomic.Int64
	// reachMu guards the reachability of Postgres, for /readyz.
	reachMu    sync.Mutex
	lastOK     time.Time
	lastErr    error
	everSynced bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	syncs prometheus.Counter
	errs  prometheus.Counter
}

var (
	_ meter.Allowance   = (*Leases)(nil)
	_ meter.SharedState = (*Cluster)(nil)
)

// Open prepares a node's membership without touching the network: a node
// that starts while Postgres is down serves from its local copy and
// catches up once Start's loops reach Postgres.
func Open(cfg Config) (*Cluster, error) {
	if cfg.DatabaseURL == "" || cfg.NodeID == "" || cfg.Local == nil {
		return nil, errors.New("cluster: database url, node id and local ledger are required")
	}
	switch cfg.Fail {
	case "":
		cfg.Fail = FailClosed
	case FailClosed, FailOpen:
	default:
		return nil, fmt.Errorf("cluster: fail mode must be %q or %q, not %q", FailClosed, FailOpen, cfg.Fail)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.PublishInterval <= 0 {
		cfg.PublishInterval = DefaultPublishInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: parse database url: %w", err)
	}
	if pcfg.ConnConfig.ConnectTimeout == 0 || pcfg.ConnConfig.ConnectTimeout > opTimeout {
		pcfg.ConnConfig.ConnectTimeout = opTimeout
	}
	db, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := &Cluster{cfg: cfg, db: db, log: cfg.Logger, node: cfg.NodeID}
	reg := prometheus.WrapRegistererWithPrefix("meterd_cluster_", cfg.Registerer)
	f := promauto.With(reg)
	c.syncs = f.NewCounter(prometheus.CounterOpts{Name: "changes_applied_total",
		Help: "Shared account and key changes applied to the local ledger."})
	c.errs = f.NewCounter(prometheus.CounterOpts{Name: "postgres_errors_total",
		Help: "Failed operations against the cluster's shared state."})
	c.liveNodes.Store(1)
	c.leases = newLeases(c, f)
	return c, nil
}

// Leases is the node's quota lease store, the meter's Allowance.
func (c *Cluster) Leases() *Leases { return c.leases }

// Start runs the heartbeat and the change feed until Close. The applier
// is the meter, built after the cluster because it takes the leases.
func (c *Cluster) Start(applier Applier) {
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(3)
	go func() {
		defer c.wg.Done()
		c.runHeartbeat(c.ctx)
	}()
	go func() {
		defer c.wg.Done()
		c.runCounts(c.ctx, applier)
	}()
	go func() {
		defer c.wg.Done()
		c.runSync(c.ctx, applier)
	}()
}

// Close stops the loops, returns the allowance this node holds unspent so
// other nodes can use it, marks the node as gone from the registry's point
// of view (its heartbeat stops), and closes the pool.
func (c *Cluster) Close(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
		c.wg.Wait()
	}
	c.leases.stop()
	err := c.leases.returnAll(ctx)
	c.db.Close()
	return err
}

// noteResult records whether Postgres answered, for /readyz.
func (c *Cluster) noteResult(err error) {
	c.reachMu.Lock()
	defer c.reachMu.Unlock()
	if err == nil {
		c.lastOK, c.lastErr = time.Now(), nil
		return
	}
	c.lastErr = err
	c.errs.Inc()
}

// Ready reports the node's view of the shared state for /readyz. A node
// cut off from Postgres stays ready: it keeps serving from its local copy
// (and hard plans from held leases), and says so here. Only in the first
// moment of a start, before the change feed has either caught up or found
// Postgres unreachable, is it not ready, so a fresh node does not answer
// 401 for accounts it has not applied yet.
func (c *Cluster) Ready(ctx context.Context) (bool, any) {
	c.reachMu.Lock()
	defer c.reachMu.Unlock()
	d := map[string]any{"node_id": c.node, "applied_revision": c.applied.Load(),
		"live_nodes": c.liveNodes.Load(), "held_allowance": c.leases.held()}
	switch {
	case c.lastErr != nil:
		d["shared_state"] = "unreachable: serving the local copy"
		d["error"] = c.lastErr.Error()
	case !c.everSynced:
		d["shared_state"] = "not yet reached: serving the local copy"
	default:
		d["shared_state"] = "ok"
	}
	if !c.lastOK.IsZero() {
		d["last_contact"] = c.lastOK.UTC()
	}
	return c.everSynced || c.lastErr != nil, d
}
