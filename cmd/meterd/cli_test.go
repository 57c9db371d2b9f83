package main_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/client"
)

// runCLI runs meterd with args and extra environment (on top of one
// without METER_* variables) and returns its output and exit code.
func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("meterd %v: %v", args, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// cleanEnv is the test's environment without meterd's variables.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "METER_") && !strings.HasPrefix(kv, "STRIPE_") {
			out = append(out, kv)
		}
	}
	return out
}

// startCLIServer starts a real `meterd serve` on dir with a clean
// environment plus env (so the CLI must find the admin token as a user's
// would), waits until it is ready, and stops it at the end of the test.
func startCLIServer(t *testing.T, dir string, env []string, flags ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	srv := exec.Command(bin, append([]string{"serve", "--data-dir", dir, "--listen", addr}, flags...)...)
	srv.Env = append(cleanEnv(), env...)
	logs := &syncBuffer{}
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: srv, base: "http://" + addr, stderr: logs, exited: make(chan error, 1)}
	go func() { p.exited <- srv.Wait() }()
	t.Cleanup(func() { srv.Process.Kill(); <-p.exited })
	p.waitReady(t)
	return p
}

// mustCLI runs meterd and fails unless it exits 0; with --json in args it
// decodes stdout into out.
func mustCLI(t *testing.T, env []string, out any, args ...string) string {
	t.Helper()
	stdout, stderr, code := runCLI(t, env, args...)
	if code != 0 {
		t.Fatalf("meterd %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			t.Fatalf("meterd %s --json: %v\n%s", strings.Join(args, " "), err, stdout)
		}
	}
	return stdout
}

// The admin's transcript: meterd serve generates its admin token, then
// only the CLI (finding the token in the data dir) and the Go client
// touch it: create an account, issue a key, meter, read usage, suspend
// (track answers 403), delete.
func TestCLI_Transcript(t *testing.T) {
	dir := t.TempDir()
	p := startCLIServer(t, dir, nil)
	env := []string{"METER_SERVER=" + p.base, "METER_DATA_DIR=" + dir}

	// $ meterd accounts create --id acme --name Acme --plan free --json
	var acct client.Account
	mustCLI(t, env, &acct, "accounts", "create", "--id", "acme", "--name", "Acme", "--email", "ops@acme.test", "--plan", "free", "--json")
	if acct.ID != "acme" || acct.Plan != "free" || acct.Status() != "active" {
		t.Fatalf("created %+v", acct)
	}
	// $ meterd keys create acme --json
	var key client.IssuedKey
	mustCLI(t, env, &key, "keys", "create", "acme", "--json")
	if !strings.HasPrefix(key.Key, key.Prefix) || key.AccountID != "acme" {
		t.Fatalf("issued %+v", key)
	}
	// The API meters three calls through the Go client.
	c, err := client.New(p.base)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		d, err := c.Track(ctx, client.Call{APIKey: key.Key, Endpoint: "/v1/things/42", Method: "GET", Status: 200})
		if err != nil || !d.Allowed {
			t.Fatalf("track: %+v, %v", d, err)
		}
	}
	// $ meterd usage acme --days 3 --json
	var usage struct {
		Current client.Usage `json:"current"`
		History []client.Day `json:"history"`
	}
	mustCLI(t, env, &usage, "usage", "acme", "--days", "3", "--json")
	if usage.Current.APICalls != 3 || *usage.Current.Remaining != 997 || len(usage.History) != 3 || usage.History[2].APICalls != 3 {
		t.Fatalf("usage %+v", usage)
	}
	// $ meterd usage acme (the human table)
	if out := mustCLI(t, env, nil, "usage", "acme"); !strings.Contains(out, "acme") || !strings.Contains(out, "997") {
		t.Fatalf("usage table:\n%s", out)
	}
	// $ meterd accounts list
	if out := mustCLI(t, env, nil, "accounts", "list"); !strings.Contains(out, "acme") || !strings.Contains(out, "active") {
		t.Fatalf("accounts list:\n%s", out)
	}
	// $ meterd accounts suspend acme; the next call is a 403.
	mustCLI(t, env, &acct, "accounts", "suspend", "acme", "--json")
	if acct.Status() != "suspended" {
		t.Fatalf("after suspend: %+v", acct)
	}
	d, err := c.Track(ctx, client.Call{APIKey: key.Key, Endpoint: "/v1/things/42", Method: "GET"})
	if err != nil || d.Allowed || d.Status != 403 || d.Code != "account_suspended" {
		t.Fatalf("track while suspended: %+v, %v", d, err)
	}
	mustCLI(t, env, &usage, "usage", "acme", "--json")
	if usage.Current.APICalls != 3 || usage.Current.DeniedCalls != 1 {
		t.Fatalf("suspended call not counted as denied: %+v", usage.Current)
	}
	// $ meterd accounts delete acme  -> refused without --yes, naming it.
	if _, stderr, code := runCLI(t, env, "accounts", "delete", "acme"); code != 2 || !strings.Contains(stderr, "--yes") {
		t.Fatalf("delete without --yes: exit %d %q", code, stderr)
	}
	mustCLI(t, env, &acct, "accounts", "delete", "acme", "--yes", "--json")
	if acct.Status() != "deleted" || len(acct.Keys) != 1 || acct.Keys[0].RevokedAt == nil {
		t.Fatalf("after delete: %+v", acct)
	}
	if _, err := c.Track(ctx, client.Call{APIKey: key.Key, Endpoint: "/x", Method: "GET"}); !client.IsCode(err, "invalid_api_key") {
		t.Fatalf("track with the deleted account's key: %v", err)
	}
	// History is kept.
	mustCLI(t, env, &usage, "usage", "acme", "--json")
	if usage.Current.APICalls != 3 {
		t.Fatalf("history lost on delete: %+v", usage.Current)
	}
}

// Exit codes scripts rely on (meterd help exit-codes).
func TestCLI_ExitCodes(t *testing.T) {
	p := startServe(t, t.TempDir())
	p.waitReady(t)
	env := []string{"METER_SERVER=" + p.base, "METER_ADMIN_TOKEN=" + adminToken}
	closed := freeAddr(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"ok", env, []string{"accounts", "list", "--json"}, 0},
		{"not found", env, []string{"accounts", "get", "nope"}, 3},
		{"wrong token", []string{"METER_SERVER=" + p.base, "METER_ADMIN_TOKEN=wrong"}, []string{"accounts", "list"}, 4},
		{"unreachable", nil, []string{"accounts", "list", "--server", "http://" + closed, "--admin-token", "x", "--timeout", "2s"}, 5},
		{"missing argument", env, []string{"keys", "create"}, 2},
		{"unknown flag", env, []string{"accounts", "list", "--nope"}, 2},
		{"bad plan", env, []string{"accounts", "create", "--name", "x", "--plan", "gold"}, 1},
	} {
		if _, stderr, code := runCLI(t, tc.env, tc.args...); code != tc.code {
			t.Errorf("%s: meterd %v: exit %d, want %d\n%s", tc.name, tc.args, code, tc.code, stderr)
		}
	}
	mustCLI(t, env, nil, "accounts", "create", "--id", "dup", "--name", "x")
	if key := mustCLI(t, env, nil, "keys", "create", "dup", "--quiet"); strings.Count(key, "\n") != 1 || strings.ContainsAny(strings.TrimSpace(key), " \t") {
		t.Errorf("keys create --quiet printed %q, want the key alone", key)
	}
	if _, _, code := runCLI(t, env, "accounts", "create", "--id", "dup", "--name", "x"); code != 6 {
		t.Errorf("duplicate account: exit %d, want 6", code)
	}
}

// Help and version exit 0 and show the right command's flags.
func TestCLI_HelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		want, reject []string
	}{
		{[]string{"serve", "-h"}, []string{"Usage: meterd serve", "-listen", "-data-dir", "METER_ADMIN_TOKEN_FILE"}, nil},
		{[]string{"help", "serve"}, []string{"Usage: meterd serve", "-proxy-listen"}, nil},
		{[]string{"help", "bill"}, []string{"Usage: meterd bill", "-dry-run", "-stripe-secret-key", "-data-dir"},
			[]string{"-proxy-listen", "-retention", "-queue-size", "-billing-schedule"}},
		{[]string{"bill", "--help"}, []string{"-dry-run"}, []string{"-proxy-listen"}},
		{[]string{"help", "accounts"}, []string{"suspend ID", "delete ID --yes"}, nil},
		{[]string{"accounts", "create", "-h"}, []string{"-name", "-server", "-admin-token", "-json"}, nil},
		{[]string{"help", "exit-codes"}, []string{"3  not found", "5  unavailable"}, nil},
		{[]string{"--version"}, []string{"meterd dev"}, nil},
		{[]string{"version"}, []string{"meterd dev"}, nil},
		{[]string{"help"}, []string{"accounts", "keys", "usage", "serve"}, nil},
	} {
		stdout, stderr, code := runCLI(t, nil, tc.args...)
		if code != 0 {
			t.Errorf("meterd %v: exit %d\n%s", tc.args, code, stderr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("meterd %v: stdout lacks %q:\n%s", tc.args, w, stdout)
			}
		}
		for _, r := range tc.reject {
			if strings.Contains(stdout, r) {
				t.Errorf("meterd %v: stdout shows %q, which is not its flag", tc.args, r)
			}
		}
	}
}

// A start that fails before serving leaves the disk as it was: no data
// directory, ledger or token.
func TestServe_FailedStartLeavesNoFiles(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	parent := t.TempDir()
	existing := filepath.Join(parent, "existing")
	if err := os.Mkdir(existing, 0o700); err != nil {
		t.Fatal(err)
	}
	badPlans := filepath.Join(parent, "plans.yaml")
	os.WriteFile(badPlans, []byte("not: [valid"), 0o600)
	for _, tc := range []struct {
		name, dir string
		args      []string
		msg       string
	}{
		{"address in use", filepath.Join(parent, "new"), []string{"--listen", taken.Addr().String()}, "--listen"},
		{"address in use, dir exists", existing, []string{"--listen", taken.Addr().String()}, "--listen"},
		{"bad plans file", filepath.Join(parent, "new2"), []string{"--listen", freeAddr(t), "--plans", badPlans}, "plans"},
	} {
		args := append([]string{"serve", "--data-dir", tc.dir}, tc.args...)
		_, stderr, code := runCLI(t, nil, args...)
		if code == 0 || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%s: exit %d, stderr %q (want it to mention %s)", tc.name, code, stderr, tc.msg)
		}
		entries, err := os.ReadDir(tc.dir)
		if tc.dir == existing {
			if err != nil || len(entries) != 0 {
				t.Errorf("%s: %s holds %v (%v), want it empty", tc.name, tc.dir, entries, err)
			}
		} else if !os.IsNotExist(err) {
			t.Errorf("%s: %s exists (%v entries) after a failed start", tc.name, tc.dir, len(entries))
		}
	}
}

// Secrets may come as files: NAME_FILE names the file holding NAME.
func TestCLI_SecretFiles(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte("file-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startCLIServer(t, dir, []string{"METER_ADMIN_TOKEN_FILE=" + tokenFile})
	if _, err := os.Stat(filepath.Join(dir, "admin.token")); !os.IsNotExist(err) {
		t.Errorf("a token was generated although METER_ADMIN_TOKEN_FILE gave one (%v)", err)
	}
	env := []string{"METER_SERVER=" + p.base, "METER_ADMIN_TOKEN_FILE=" + tokenFile}
	mustCLI(t, env, nil, "accounts", "list")
	if _, stderr, code := runCLI(t, []string{"METER_ADMIN_TOKEN_FILE=/nonexistent/token"}, "accounts", "list"); code == 0 ||
		!strings.Contains(stderr, "METER_ADMIN_TOKEN_FILE") {
		t.Errorf("missing token file: exit %d %q, want a failure naming METER_ADMIN_TOKEN_FILE", code, stderr)
	}
}
