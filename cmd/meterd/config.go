package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/meterd/meterd/ledger"
)

// Config is everything `meterd serve` is told by flags and environment.
// A flag wins over its environment variable, which wins over the default.
type Config struct {
	DataDir          string
	Listen           string
	AdminToken       string
	ServiceToken     string
	Durability       string
	PlansFile        string
	NodeID           string
	LogLevel         string
	LogFormat        string
	EndpointPatterns string
	MaxEndpoints     int
	MaxAccounts      int
	MaxKeys          int
	QueueSize        int
	// MinFreeBytes: below this much free space on the ledger's file
	// system, writes are refused with 503 (0 = off).
	MinFreeBytes uint64
	// Retention is how long raw events stay in the ledger; PruneInterval
	// how often pruning runs. Aggregates and counters are kept.
	Retention     time.Duration
	PruneInterval time.Duration
	// The reverse proxy: a second listener metering every request and
	// forwarding it to Upstream; off while ProxyListen is empty.
	ProxyListen    string
	Upstream       string
	ProxyKeyHeader string
	ProxyKeyQuery  string
	ProxyStripKey  bool
	// MaxInFlight bounds the API requests handled at once (0 = no bound);
	// MaxQueue more wait up to QueueWait for a slot, the rest get 503.
	MaxInFlight int
	MaxQueue    int
	QueueWait   time.Duration
	// GCPercent is the garbage collector's target (GOGC); the GOGC
	// environment variable, when set, wins.
	GCPercent int
	BillingConfig
	ExportConfig
	ConsoleConfig
	WebhookConfig
	ClusterConfig
	LedgerConfig
}

// bindFlags declares the flags with env-var defaults.
func (c *Config) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", env("METER_DATA_DIR", "./data"), "directory for meter.db and the generated admin token (env METER_DATA_DIR)")
	fs.StringVar(&c.Listen, "listen", env("METER_LISTEN", "127.0.0.1:8480"), "address of meterd's own API (env METER_LISTEN)")
	fs.StringVar(&c.AdminToken, "admin-token", env("METER_ADMIN_TOKEN", ""), "bearer token for /api/admin/*; generated into DATA_DIR/admin.token if empty (env METER_ADMIN_TOKEN)")
	fs.StringVar(&c.ServiceToken, "service-token", env("METER_SERVICE_TOKEN", ""), "bearer token required on /v1/* when set (env METER_SERVICE_TOKEN)")
	fs.StringVar(&c.Durability, "durability", env("METER_DURABILITY", "sync"), "sync: answer after the commit holding the call; async: answer at once (env METER_DURABILITY)")
	fs.StringVar(&c.PlansFile, "plans", env("METER_PLANS", ""), "JSON or YAML file overriding or adding plans (env METER_PLANS)")
	fs.StringVar(&c.NodeID, "node-id", env("METER_NODE_ID", ""), "node id stamped on event ids; default: generated once and kept in the ledger (env METER_NODE_ID)")
	fs.StringVar(&c.LogLevel, "log-level", env("METER_LOG_LEVEL", "info"), "debug, info, warn or error (env METER_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("METER_LOG_FORMAT", "text"), "text or json (env METER_LOG_FORMAT)")
	fs.StringVar(&c.EndpointPatterns, "endpoint-patterns", env("METER_ENDPOINT_PATTERNS", ""), "comma-separated regexps; a path segment matching one folds to {id} (env METER_ENDPOINT_PATTERNS)")
	fs.IntVar(&c.MaxEndpoints, "max-endpoints", envInt("METER_MAX_ENDPOINTS", 500), "distinct endpoint templates per account; more count as \"other\" (env METER_MAX_ENDPOINTS)")
	fs.IntVar(&c.MaxAccounts, "max-accounts", envInt("METER_MAX_ACCOUNTS", 0), "maximum accounts, 0 = no limit (env METER_MAX_ACCOUNTS)")
	fs.IntVar(&c.MaxKeys, "max-keys-per-account", envInt("METER_MAX_KEYS_PER_ACCOUNT", 100), "maximum active API keys per account, 0 = no limit (env METER_MAX_KEYS_PER_ACCOUNT)")
	fs.IntVar(&c.QueueSize, "queue-size", envInt("METER_QUEUE_SIZE", 65536), "ledger writes that may wait for a commit; past it calls get 503 (env METER_QUEUE_SIZE)")
	fs.Uint64Var(&c.MinFreeBytes, "min-free-bytes", uint64(envInt("METER_MIN_FREE_BYTES", 64<<20)), "refuse writes (503) while the ledger's file system has less free space; 0 = off (env METER_MIN_FREE_BYTES)")
	fs.DurationVar(&c.Retention, "retention", envDuration("METER_RETENTION", ledger.DefaultRetention), "how long raw events stay in the ledger (never pruned before they are exported) (env METER_RETENTION)")
	fs.DurationVar(&c.PruneInterval, "prune-interval", envDuration("METER_PRUNE_INTERVAL", time.Hour), "how often old events are pruned (env METER_PRUNE_INTERVAL)")
	fs.StringVar(&c.ProxyListen, "proxy-listen", env("METER_PROXY_LISTEN", ""), "address of the metering reverse proxy; empty = off (env METER_PROXY_LISTEN)")
	fs.StringVar(&c.Upstream, "upstream", env("METER_UPSTREAM", ""), "base URL of the API the proxy forwards to, e.g. http://127.0.0.1:3000 (env METER_UPSTREAM)")
	fs.StringVar(&c.ProxyKeyHeader, "proxy-key-header", env("METER_PROXY_KEY_HEADER", ""), "extra header the proxy reads the API key from, besides X-API-Key and Authorization: Bearer (env METER_PROXY_KEY_HEADER)")
	fs.StringVar(&c.ProxyKeyQuery, "proxy-key-query", env("METER_PROXY_KEY_QUERY", ""), "query parameter the proxy reads the API key from; empty = none (env METER_PROXY_KEY_QUERY)")
	fs.BoolVar(&c.ProxyStripKey, "proxy-strip-key", envBool("METER_PROXY_STRIP_KEY", false), "remove the API key from requests forwarded upstream (env METER_PROXY_STRIP_KEY)")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", envInt("METER_MAX_IN_FLIGHT", 2048), "API requests handled at once; past it (and the queue) requests get 503 overloaded with Retry-After; 0 = no bound (env METER_MAX_IN_FLIGHT)")
	fs.IntVar(&c.MaxQueue, "max-queue", envInt("METER_MAX_QUEUE", 0), "requests that may wait for an in-flight slot (env METER_MAX_QUEUE)")
	fs.DurationVar(&c.QueueWait, "queue-wait", envDuration("METER_QUEUE_WAIT", 10*time.Millisecond), "longest a queued request waits for a slot before its 503 (env METER_QUEUE_WAIT)")
	fs.IntVar(&c.GCPercent, "gc-percent", envInt("METER_GC_PERCENT", 400), "garbage collector target, as GOGC; the GOGC variable wins when set (env METER_GC_PERCENT)")
	c.bindBillingFlags(fs)
	c.bindExportFlags(fs)
	c.bindConsoleFlags(fs)
	c.bindWebhookFlags(fs)
	c.bindClusterFlags(fs)
	c.bindLedgerFlags(fs)
}

func (c *Config) validate() error {
	if c.Durability != "sync" && c.Durability != "async" {
		return fmt.Errorf("--durability: must be sync or async, not %q", c.Durability)
	}
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir: must not be empty")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format: must be text or json, not %q", c.LogFormat)
	}
	// The proxy needs both or neither.
	if (c.ProxyListen == "") != (c.Upstream == "") {
		return fmt.Errorf("--proxy-listen and --upstream: set both to run the proxy, or neither")
	}
	if err := c.validateBilling(); err != nil {
		return err
	}
	if err := c.validateConsole(); err != nil {
		return err
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	return c.validateWebhooks()
}

func (c *Config) patterns() []string {
	if strings.TrimSpace(c.EndpointPatterns) == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(c.EndpointPatterns, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// envBool reads a boolean environment variable (strconv.ParseBool forms).
func envBool(name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(name string, def int) int {
	var n int
	if v, ok := os.LookupEnv(name); ok {
		if _, err := fmt.Sscan(v, &n); err == nil {
			return n
		}
	}
	return def
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level: %q is not debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// bindSubset declares on fs only the named flags of serve's set, with
// serve's names, defaults, environment variables and help, so a
// subcommand that reads part of the configuration shows only that part.
func (c *Config) bindSubset(fs *flag.FlagSet, names ...string) {
	all := flag.NewFlagSet("", flag.ContinueOnError)
	c.bindFlags(all)
	for _, n := range names {
		if f := all.Lookup(n); f != nil {
			fs.Var(f.Value, f.Name, f.Usage)
		}
	}
}

// applyGC sets the collector's target from GCPercent unless GOGC is set.
// Measured in issue 12: 400 served ~1.18× the calls of Go's default 100
// (geometric mean of two interleaved runs in opposite orders), for a heap
// up to five times the live one (tens of MiB at 100k accounts).
func (c *Config) applyGC() {
	if _, set := os.LookupEnv("GOGC"); !set && c.GCPercent > 0 {
		debug.SetGCPercent(c.GCPercent)
	}
}
