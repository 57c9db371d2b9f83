package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/meterd/meterd/cluster"
	"github.com/meterd/meterd/console"
	"github.com/meterd/meterd/export/postgres"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/meterd/meterd/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Main wires meterd together: ParseFlags, then Serve, which Closes on the
// way out.
type Main struct {
	Config Config
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger

	ledger *ledger.Ledger
	meter  *meter.Meter
	server *http.Server
	proxy  *http.Server // reverse proxy listener, nil when off

	exporter *postgres.Exporter // nil when export is off
	cluster  *cluster.Cluster   // nil unless --cluster

	// bgCtx runs the background loops (pruner, exporter, billing
	// scheduler); Close cancels it and waits for them (bg) before it
	// closes the ledger.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
}

// NewMain returns a Main writing to the given streams.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr}
}

// runServe is `meterd serve`.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain(stdout, stderr)
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	return m.Serve(ctx)
}

const serveUsage = `Usage: meterd serve [flags]

Runs the metering server: meterd's own API on --listen, the ledger in
--data-dir, and optionally the reverse proxy, the Postgres export and
Stripe billing. Every flag also reads the environment variable named in
its help; secrets also read NAME_FILE (e.g. METER_ADMIN_TOKEN_FILE).

Flags:
`

// ParseFlags reads flags (and their environment variables).
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("meterd serve", flag.ContinueOnError)
	m.Config.bindFlags(fs)
	fs.Usage = func() { fmt.Fprint(fs.Output(), serveUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, m.stdout, m.stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return m.Config.validate()
}

// Serve opens the ledger, loads the meter, and serves HTTP until ctx ends;
// then it shuts down gracefully: stop accepting, finish in-flight
// requests, commit the queue, close the file.
func (m *Main) Serve(ctx context.Context) error {
	m.log = newLogger(m.stderr, m.Config.LogLevel, m.Config.LogFormat)
	m.Config.applyGC()
	// Bind first: a start that fails on a taken address must not have
	// created a data directory, a ledger or a token.
	ln, err := net.Listen("tcp", m.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen %s (--listen): %w", m.Config.Listen, err)
	}
	var pln net.Listener
	if m.Config.ProxyListen != "" {
		if pln, err = net.Listen("tcp", m.Config.ProxyListen); err != nil {
			ln.Close()
			return fmt.Errorf("listen %s (--proxy-listen): %w", m.Config.ProxyListen, err)
		}
	}
	undo := m.Config.noteDataDir()
	if err := m.open(ctx); err != nil {
		m.Close()
		ln.Close()
		if pln != nil {
			pln.Close()
		}
		undo()
		return err
	}
	m.log.Info("meterd listening", "addr", ln.Addr().String(), "data_dir", m.Config.DataDir,
		"durability", m.Config.Durability, "node_id", m.ledger.NodeID(), "version", version)
	m.warnOpenListener(ln)
	m.warnDiskFloor()
	m.logRestored()
	m.warnUnfinishedRestore()
	errc := make(chan error, 1)
	go func() { errc <- m.server.Serve(ln) }()
	if m.proxy != nil {
		m.log.Info("meterd proxy listening", "addr", pln.Addr().String(), "upstream", m.Config.Upstream)
		go func() {
			if err := m.proxy.Serve(pln); !errors.Is(err, http.ErrServerClosed) {
				select {
				case errc <- fmt.Errorf("proxy: %w", err):
				default:
				}
			}
		}()
	}
	select {
	case <-ctx.Done():
		m.log.Info("shutting down")
	case err := <-errc:
		m.Close()
		return fmt.Errorf("serve: %w", err)
	}
	return m.Close()
}

// open creates the data directory, opens the ledger and the meter, builds
// the HTTP servers and starts the background loops.
func (m *Main) open(ctx context.Context) error {
	c := &m.Config
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := m.ensureAdminToken(); err != nil {
		return err
	}
	portalKey, err := m.ensurePortalKey()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	mx := metrics.New(reg)
	metrics.RegisterBuildInfo(reg, version)
	if err := m.openLedger(reg, mx); err != nil {
		return err
	}
	if err := m.openCluster(reg); err != nil {
		return err
	}
	if err := m.openMeter(ctx); err != nil {
		return err
	}
	m.bgCtx, m.bgCancel = context.WithCancel(context.Background())
	hooks, err := m.startWebhooks(reg)
	if err != nil {
		return err
	}
	api := httpapi.New(httpapi.Config{Meter: m.meter, AdminToken: c.AdminToken, ServiceToken: c.ServiceToken,
		Logger: m.log, Observer: mx, Usage: m.usageReader(), Maintenance: m.ledger, Billed: m.billedReader(), Webhooks: webhookAPI(hooks),
		Metrics:     promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Ready:       map[string]httpapi.Readiness{"ledger": m.ledgerReady, "disk": m.diskReady},
		CORSOrigins: c.corsOrigins(), PortalKey: portalKey, PortalTTL: c.PortalTTL, PortalMaxTTL: c.PortalMaxTTL,
		MaxInFlight: c.MaxInFlight, MaxQueue: c.MaxQueue, QueueWait: c.QueueWait})
	api.RegisterConsole(console.Handler(console.Options{FrameAncestors: c.frameAncestors()}))
	if err := m.startExport(ctx, api, reg); err != nil {
		return err
	}
	m.startPruner()
	m.startCluster(api)
	if err := m.startBilling(m.bgCtx, api, reg); err != nil {
		return err
	}
	m.server = httpapi.NewHTTPServer(c.Listen, api.Handler(), m.log)
	return m.openProxy(mx)
}

// openLedger opens the ledger file and registers its gauges.
func (m *Main) openLedger(reg prometheus.Registerer, mx *metrics.Metrics) error {
	c := &m.Config
	l, err := ledger.Open(filepath.Join(c.DataDir, ledger.FileName), ledger.Options{NodeID: c.NodeID,
		QueueSize: c.QueueSize, Observer: mx, MinFreeBytes: c.MinFreeBytes, Logger: m.log,
		CheckpointEvents: c.CheckpointEvents, CheckpointInterval: c.CheckpointInterval})
	if err != nil {
		return err
	}
	m.ledger = l
	metrics.RegisterGauge(reg, "meterd_ledger_queue_depth", "Writes waiting for the ledger writer.",
		func() float64 { return float64(l.QueueDepth()) })
	metrics.RegisterGauge(reg, "meterd_ledger_file_size_bytes", "Size of the ledger file.",
		func() float64 { return float64(l.FileSize()) })
	metrics.RegisterDiskFree(reg, l.MinFreeBytes(), l.FreeBytes)
	return nil
}

// openMeter loads plans and the meter's state from the ledger.
func (m *Main) openMeter(ctx context.Context) error {
	c := &m.Config
	plans := meter.DefaultPlans()
	if c.PlansFile != "" {
		p, err := meter.LoadPlans(c.PlansFile)
		if err != nil {
			return err
		}
		plans = p
	}
	folder, err := meter.NewEndpointFolder(c.patterns())
	if err != nil {
		return fmt.Errorf("--endpoint-patterns: %w", err)
	}
	allowance, shared, peers := m.clusterPorts()
	m.meter, err = meter.New(ctx, meter.Config{Store: m.ledger, Plans: plans, Async: c.Durability == "async",
		Folder: folder, MaxEndpoints: c.MaxEndpoints, MaxAccounts: c.MaxAccounts, MaxKeysPerAccount: c.MaxKeys,
		Allowance: allowance, Shared: shared, Peers: peers})
	return err
}

// openProxy builds the reverse proxy's server when --proxy-listen is set.
func (m *Main) openProxy(mx *metrics.Metrics) error {
	c := &m.Config
	if c.ProxyListen == "" {
		return nil
	}
	h, err := httpapi.NewProxy(httpapi.ProxyConfig{Meter: m.meter, Upstream: c.Upstream,
		KeyHeader: c.ProxyKeyHeader, KeyQuery: c.ProxyKeyQuery, StripKey: c.ProxyStripKey,
		Logger: m.log, Observer: mx})
	if err != nil {
		return fmt.Errorf("--upstream: %w", err)
	}
	m.proxy = httpapi.NewProxyServer(c.ProxyListen, h, m.log)
	return nil
}

// goBackground runs fn until Close cancels it; Close waits for it before
// the ledger closes.
func (m *Main) goBackground(fn func(ctx context.Context)) {
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		fn(m.bgCtx)
	}()
}

// startPruner prunes raw events past the retention window, never past the
// export cursor while export is on.
func (m *Main) startPruner() {
	opts := ledger.PruneOptions{Retention: m.Config.Retention}
	if m.exporter != nil {
		opts.Cursors = []string{postgres.DefaultCursorName}
	}
	m.goBackground(func(ctx context.Context) {
		m.ledger.RunPruner(ctx, m.Config.PruneInterval, opts, m.log)
	})
}

// ledgerReady is ready while the writer's queue has room.
func (m *Main) ledgerReady(ctx context.Context) (bool, any) {
	depth := m.ledger.QueueDepth()
	return depth < m.Config.QueueSize*9/10, map[string]any{"queue_depth": depth, "file_size_bytes": m.ledger.FileSize()}
}

// ensureAdminToken generates an admin token on first start if none was
// given, stores it with mode 0600, and says where — never what — it is.
func (m *Main) ensureAdminToken() error {
	if m.Config.AdminToken != "" {
		return nil
	}
	path := filepath.Join(m.Config.DataDir, adminTokenFile)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		m.Config.AdminToken = strings.TrimSpace(string(b))
		m.log.Info("using the admin token stored in the data directory", "path", path)
		return nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("generate admin token: %w", err)
	}
	tok := "mat_" + base64.RawURLEncoding.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("store admin token: %w", err)
	}
	m.Config.AdminToken = tok
	m.log.Info("generated an admin token (read it from the file)", "path", path)
	return nil
}

// Close shuts the server down and closes the ledger after its queue is
// committed. It is safe to call on a partly opened Main.
func (m *Main) Close() error {
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := m.server.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("shutdown http: %w", err))
		}
		cancel()
		m.server = nil
	}
	if m.proxy != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := m.proxy.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("shutdown proxy: %w", err))
		}
		cancel()
		m.proxy = nil
	}
	if err := m.closeCluster(); err != nil {
		errs = append(errs, err)
	}
	if m.bgCancel != nil {
		m.bgCancel()
		m.bg.Wait()
		m.bgCancel = nil
	}
	if m.exporter != nil {
		m.exporter.Close()
		m.exporter = nil
	}
	if m.ledger != nil {
		if err := m.ledger.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close ledger: %w", err))
		}
		m.ledger = nil
	}
	return errors.Join(errs...)
}
