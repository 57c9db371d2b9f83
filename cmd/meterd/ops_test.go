package main_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// runOps runs a meterd subcommand to completion and returns its output
// and exit code.
func runOps(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("meterd %v: %v", args, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// decodeReport parses `meterd verify` output.
func decodeReport(t *testing.T, stdout string) ledger.VerifyReport {
	t.Helper()
	var rep ledger.VerifyReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("verify output is not a report: %v\n%s", err, stdout)
	}
	return rep
}

// TestOps drives the operator's subcommands against a ledger written by a
// real `meterd serve`: health while it runs, verify refused while it
// runs, then restore and verify of a copy once it has stopped.
func TestOps(t *testing.T) {
	live := t.TempDir()
	p := startServe(t, live)
	p.waitReady(t)
	key := setupAccount(t, p, "acme", "pro")
	for range 5 {
		if code := do(t, "POST", p.base+"/v1/track", "", map[string]string{"api_key": key, "endpoint": "/v1/x", "method": "GET"}, nil); code != 200 {
			t.Fatalf("track: %d", code)
		}
	}
	if out, errOut, code := runOps(t, "health", "--url", p.base); code != 0 || out != "ok\n" {
		t.Fatalf("health of a running meterd: exit %d %q %q", code, out, errOut)
	}
	if _, errOut, code := runOps(t, "verify", "--data-dir", live); code != 1 || !strings.Contains(errOut, "GET /api/admin/verify") {
		t.Fatalf("verify of a running meterd: exit %d %q", code, errOut)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.waitExit(t, 30*time.Second); err != nil {
		t.Fatalf("meterd exit: %v\n%s", err, p.stderr)
	}
	if _, _, code := runOps(t, "health", "--url", p.base, "--timeout", "2s"); code != 1 {
		t.Fatalf("health of a stopped meterd: exit %d", code)
	}

	backup := filepath.Join(t.TempDir(), "backup.db")
	raw, err := os.ReadFile(filepath.Join(live, ledger.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backup, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "data")
	out, errOut, code := runOps(t, "restore", "--from", backup, "--data-dir", restored)
	if code != 0 || !strings.Contains(out, "1 accounts, 5 events (sequences 1..5); verify ok") {
		t.Fatalf("restore: exit %d %q %q", code, out, errOut)
	}
	if _, errOut, code := runOps(t, "restore", "--from", backup, "--data-dir", restored); code != 1 || !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, "--force") {
		t.Fatalf("restore over a ledger: exit %d %q", code, errOut)
	}
	if out, errOut, code := runOps(t, "restore", "--from", backup, "--data-dir", restored, "--force"); code != 0 {
		t.Fatalf("forced restore: exit %d %q %q", code, out, errOut)
	}
	out, errOut, code = runOps(t, "verify", "--data-dir", restored)
	if rep := decodeReport(t, out); code != 0 || !rep.OK || rep.Events != 5 || rep.Accounts != 1 || rep.Keys != 1 {
		t.Fatalf("verify: exit %d %+v %q", code, rep, errOut)
	}

	// A key whose account is gone: verify says so and fails.
	l, err := ledger.Open(filepath.Join(restored, ledger.FileName), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = l.PutKey(context.Background(), meter.APIKey{ID: "key_orphan", AccountID: "ghost", Prefix: "mk_orph"})
	if cerr := l.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	out, errOut, code = runOps(t, "verify", "--data-dir", restored)
	rep := decodeReport(t, out)
	if code != 1 || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != ledger.ProblemMissingAccount ||
		!strings.Contains(errOut, "verify: 1 problems found") {
		t.Fatalf("verify of a damaged ledger: exit %d %+v %q", code, rep, errOut)
	}
}

// Usage errors exit 2 (see meterd help exit-codes); a data dir without a
// ledger is said to be one, not called corrupt.
func TestOps_Usage(t *testing.T) {
	for _, args := range [][]string{
		{"restore", "--data-dir", t.TempDir()}, // no --from
		{"verify", "--no-such-flag"},
		{"health", "extra"},
	} {
		if _, _, code := runOps(t, args...); code != 2 {
			t.Errorf("meterd %v: exit %d, want 2", args, code)
		}
	}
	if _, errOut, code := runOps(t, "verify", "--data-dir", t.TempDir()); code != 1 || !strings.Contains(errOut, "no ledger in") {
		t.Errorf("verify of an empty data dir: exit %d %q", code, errOut)
	}
}
