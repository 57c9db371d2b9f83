package main_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServe_ConsoleAndPortalKey: serve mounts the console, keeps the
// portal signing key in the data directory (0600), and a portal token
// minted before a restart still reads usage after it.
func TestServe_ConsoleAndPortalKey(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, "--cors-origins", "https://app.example.com")
	p.waitReady(t)
	resp, err := http.Get(p.base + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "meterd console") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("/ui/: %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = http.Get(p.base + "/ui/usage")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self' https://app.example.com") {
		t.Errorf("/ui/usage CSP %q does not let the CORS origin frame it", csp)
	}
	fi, err := os.Stat(filepath.Join(dir, "portal.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("portal.key: %v %v", fi, err)
	}
	if code := do(t, "POST", p.base+"/api/admin/accounts", adminToken, map[string]string{"id": "acct_k", "name": "k"}, nil); code != 201 {
		t.Fatalf("create account: %d", code)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if code := do(t, "POST", p.base+"/api/admin/accounts/acct_k/portal-token", adminToken, nil, &tok); code != 201 {
		t.Fatalf("portal token: %d", code)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	p2 := startServe(t, dir)
	p2.waitReady(t)
	if code := do(t, "GET", p2.base+"/api/usage/current", tok.Token, nil, nil); code != 200 {
		t.Errorf("portal token after a restart: %d, want 200", code)
	}
}
