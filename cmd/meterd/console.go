package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ConsoleConfig configures the browser-facing parts of `meterd serve`:
// which origins may read usage from a browser, which may frame the
// customer usage page, and how long portal tokens live.
type ConsoleConfig struct {
	// CORSOrigins is a comma-separated list of exact origins
	// (scheme://host[:port]) allowed to call /api/usage/* from a browser.
	CORSOrigins string
	// FrameOrigins may embed /ui/usage in an <iframe>; default: the CORS
	// origins.
	FrameOrigins string
	PortalTTL    time.Duration
	PortalMaxTTL time.Duration
}

func (c *ConsoleConfig) bindConsoleFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.CORSOrigins, "cors-origins", env("METER_CORS_ORIGINS", ""), "comma-separated origins (https://app.example.com) allowed to call /api/usage/* from a browser; never \"*\" (env METER_CORS_ORIGINS)")
	fs.StringVar(&c.FrameOrigins, "frame-origins", env("METER_FRAME_ORIGINS", ""), "comma-separated origins allowed to embed /ui/usage in an iframe; default: the --cors-origins (env METER_FRAME_ORIGINS)")
	fs.DurationVar(&c.PortalTTL, "portal-token-ttl", envDuration("METER_PORTAL_TOKEN_TTL", time.Hour), "default lifetime of a portal token (env METER_PORTAL_TOKEN_TTL)")
	fs.DurationVar(&c.PortalMaxTTL, "portal-token-max-ttl", envDuration("METER_PORTAL_TOKEN_MAX_TTL", 24*time.Hour), "longest lifetime a portal token may be asked for (env METER_PORTAL_TOKEN_MAX_TTL)")
}

func (c *ConsoleConfig) validateConsole() error {
	for _, list := range []struct{ flag, v string }{{"--cors-origins", c.CORSOrigins}, {"--frame-origins", c.FrameOrigins}} {
		for _, o := range splitList(list.v) {
			if err := checkOrigin(o); err != nil {
				return fmt.Errorf("%s: %w", list.flag, err)
			}
		}
	}
	if c.PortalTTL <= 0 || c.PortalMaxTTL < c.PortalTTL {
		return fmt.Errorf("--portal-token-ttl: must be positive and at most --portal-token-max-ttl")
	}
	return nil
}

// checkOrigin accepts scheme://host[:port] and nothing else: a wildcard
// would let every site read usage with whatever credential it holds.
func checkOrigin(o string) error {
	if o == "*" || strings.Contains(o, "*") {
		return fmt.Errorf("%q: wildcards are not allowed; name each origin", o)
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin like https://app.example.com", o)
	}
	return nil
}

func (c *ConsoleConfig) corsOrigins() []string { return splitList(c.CORSOrigins) }

func (c *ConsoleConfig) frameAncestors() []string {
	if strings.TrimSpace(c.FrameOrigins) != "" {
		return splitList(c.FrameOrigins)
	}
	return c.corsOrigins()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimRight(strings.TrimSpace(p), "/"); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ensurePortalKey loads the key that signs portal tokens from
// DATA_DIR/portal.key, generating it (32 random bytes, hex, mode 0600) on
// first start. It is its own secret rather than derived from the admin
// token, so rotating one does not rotate the other; deleting the file and
// restarting revokes every portal token.
func (m *Main) ensurePortalKey() ([]byte, error) {
	path := filepath.Join(m.Config.DataDir, "portal.key")
	if b, err := os.ReadFile(path); err == nil {
		key, err := hex.DecodeString(string(bytes.TrimSpace(b)))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("portal key %s: want at least 32 bytes as hex", path)
		}
		return key, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate portal key: %w", err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("store portal key: %w", err)
	}
	m.log.Info("generated the portal token signing key", "path", path)
	return key, nil
}
