package main_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestServe_StartupWarnings: a reachable API without a service token, and
// a disk floor above the volume's free space, are said at start-up; the
// floor also makes /readyz fail with a JSON reason.
func TestServe_StartupWarnings(t *testing.T) {
	const openWarning = "no service token, and meterd's API listens beyond loopback"
	t.Run("loopback, no token", func(t *testing.T) {
		p := startServe(t, t.TempDir())
		p.waitReady(t)
		if strings.Contains(p.stderr.String(), openWarning) {
			t.Fatalf("warned on loopback:\n%s", p.stderr)
		}
	})
	// All interfaces, briefly: the test only reads the start-up log.
	wildcard := func(t *testing.T) string {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		return "0.0.0.0:" + port
	}
	t.Run("all interfaces, no token", func(t *testing.T) {
		addr := wildcard(t)
		p := startServe(t, t.TempDir(), "--listen", addr)
		p.base = "http://127.0.0.1:" + addr[len("0.0.0.0:"):]
		p.waitReady(t)
		if !strings.Contains(p.stderr.String(), openWarning) || !strings.Contains(p.stderr.String(), "METER_SERVICE_TOKEN") {
			t.Fatalf("no warning about the open API:\n%s", p.stderr)
		}
	})
	t.Run("all interfaces, token", func(t *testing.T) {
		addr := wildcard(t)
		p := startServe(t, t.TempDir(), "--listen", addr, "--service-token", "svc-startup")
		p.base = "http://127.0.0.1:" + addr[len("0.0.0.0:"):]
		p.waitReady(t)
		if strings.Contains(p.stderr.String(), openWarning) {
			t.Fatalf("warned with a service token set:\n%s", p.stderr)
		}
	})
	t.Run("disk floor above free space", func(t *testing.T) {
		p := startServe(t, t.TempDir(), "--min-free-bytes", "4611686018427387904") // 4 EiB
		p.waitReady(t)
		if !strings.Contains(p.stderr.String(), "level=ERROR") || !strings.Contains(p.stderr.String(), "writes are refused") {
			t.Fatalf("no start-up error about the disk floor:\n%s", p.stderr)
		}
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ready struct {
			Ready  bool `json:"ready"`
			Checks map[string]struct {
				OK     bool `json:"ok"`
				Detail struct {
					Reason string `json:"reason"`
				} `json:"detail"`
			} `json:"checks"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
			t.Fatal(err)
		}
		disk := ready.Checks["disk"]
		if resp.StatusCode != 503 || ready.Ready || disk.OK || !strings.Contains(disk.Detail.Reason, "--min-free-bytes") {
			t.Fatalf("/readyz %d %+v", resp.StatusCode, ready)
		}
		if code := do(t, "POST", p.base+"/api/admin/accounts", adminToken, map[string]string{"id": "x", "name": "x", "plan": "free"}, nil); code != 503 {
			t.Fatalf("create account below the floor: %d", code)
		}
	})
}
