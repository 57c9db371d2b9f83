package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
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
	return nil
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
