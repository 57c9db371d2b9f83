package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/internal/testenv"
)

// bin is the meterd binary built once for every test here: crash tests
// need a real process to SIGKILL.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meterd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "meterd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build meterd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	testenv.ReportSkipped("cmd/meterd", "export-to-Postgres tests", "METER_TEST_DATABASE_URL",
		os.Getenv("METER_TEST_DATABASE_URL") != "")
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminToken = "test-admin-token-0123456789"

// proc is one running `meterd serve`.
type proc struct {
	cmd    *exec.Cmd
	base   string
	stderr *syncBuffer
	exited chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe starts meterd serve on dataDir and a free loopback port.
func startServe(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"serve", "--data-dir", dataDir, "--listen", addr}, extra...)
	p := &proc{cmd: exec.Command(bin, args...), base: "http://" + addr, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "METER_ADMIN_TOKEN="+adminToken)
	p.cmd.Stderr, p.cmd.Stdout = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		p.exited <- nil
	})
	return p
}

// waitPort waits until addr accepts TCP connections.
func waitPort(t testing.TB, addr string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s never accepted connections", addr)
}

// waitReady polls /healthz until it answers or the process dies.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("meterd exited early: %v\n%s", err, p.stderr)
		default:
		}
		resp, err := http.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("meterd not ready:\n%s", p.stderr)
}

// waitExit waits for the process to end and returns its error.
func (p *proc) waitExit(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		return err
	case <-time.After(within):
		t.Fatalf("meterd still running after %v:\n%s", within, p.stderr)
		return nil
	}
}

// do sends a JSON request and decodes a JSON answer into out (if not nil).
func do(t testing.TB, method, url, token string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// setupAccount creates an account on the given plan and returns a key.
func setupAccount(t *testing.T, p *proc, id, plan string) string {
	t.Helper()
	return setupAccountAt(t, p.base, id, plan)
}

func setupAccountAt(t testing.TB, base, id, plan string) string {
	t.Helper()
	if code := do(t, "POST", base+"/api/admin/accounts", adminToken,
		map[string]string{"id": id, "name": id, "plan": plan}, nil); code != 201 {
		t.Fatalf("create account: %d", code)
	}
	var key struct{ Key string }
	if code := do(t, "POST", base+"/api/admin/accounts/"+id+"/keys", adminToken, nil, &key); code != 201 {
		t.Fatalf("issue key: %d", code)
	}
	return key.Key
}

func TestServe_SecondInstanceRefused(t *testing.T) {
	dir := t.TempDir()
	first := startServe(t, dir)
	first.waitReady(t)
	second := startServe(t, dir)
	start := time.Now()
	if err := second.waitExit(t, 10*time.Second); err == nil {
		t.Fatal("second meterd on the same data dir exited 0")
	}
	if !strings.Contains(second.stderr.String(), "in use") {
		t.Fatalf("no 'in use' message:\n%s", second.stderr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to refuse", d)
	}
}

func TestServe_BadLedgerFileUntouched(t *testing.T) {
	for name, content := range map[string][]byte{
		"garbage":   bytes.Repeat([]byte("definitely not bbolt "), 500),
		"truncated": truncatedLedger(t),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "meter.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			p := startServe(t, dir)
			if err := p.waitExit(t, 10*time.Second); err == nil {
				t.Fatal("meterd exited 0 on a bad ledger")
			}
			if !strings.Contains(p.stderr.String(), "corrupt") {
				t.Fatalf("no clear message:\n%s", p.stderr)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, content) {
				t.Fatal("the ledger file was modified")
			}
		})
	}
}

// truncatedLedger makes a real ledger through the binary, then cuts it
// inside its used pages.
func truncatedLedger(t *testing.T) []byte {
	dir := t.TempDir()
	p := startServe(t, dir)
	p.waitReady(t)
	for i := 0; i < 50; i++ {
		setupAccount(t, p, fmt.Sprintf("acct-%d", i), "free")
	}
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.waitExit(t, 10*time.Second); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "meter.db"))
	if err != nil {
		t.Fatal(err)
	}
	return b[:5*4096+123]
}

func TestServe_GeneratedAdminToken(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--listen", addr)
	cmd.Env = append(os.Environ(), "METER_ADMIN_TOKEN=")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, base: "http://" + addr, stderr: &out, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	defer func() { cmd.Process.Kill(); <-p.exited }()
	p.waitReady(t)
	path := filepath.Join(dir, "admin.token")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v", fi.Mode().Perm())
	}
	tok, _ := os.ReadFile(path)
	token := strings.TrimSpace(string(tok))
	if len(token) < 32 {
		t.Fatalf("weak token %q", token)
	}
	if strings.Contains(out.String(), token) {
		t.Fatal("the admin token was printed")
	}
	if !strings.Contains(out.String(), path) {
		t.Fatalf("the token's location was not printed:\n%s", out.String())
	}
	if code := do(t, "POST", p.base+"/api/admin/accounts", token, map[string]string{"name": "x"}, nil); code != 201 {
		t.Fatalf("generated token rejected: %d", code)
	}
}
