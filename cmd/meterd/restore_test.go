package main_test

import (
	"context"
	"errors"
	"math/rand/v2"
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

// writeLedger creates a stopped meterd's ledger at path holding one pro
// account and n calls of it.
func writeLedger(t *testing.T, path, account string, n int) {
	t.Helper()
	l, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC()
	if err := l.PutAccount(ctx, meter.Account{ID: account, Name: account, Plan: "pro", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ev := &meter.Event{Time: now, PeriodStart: meter.PeriodAt(time.Time{}, now).Start, AccountID: account,
			Endpoint: "/v1/x", Method: "GET", Status: 200, Decision: meter.Allowed}
		if err := l.Append(ctx, ev, i == n-1); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyTo(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// servedAccount starts serve on dir and reports which of the accounts
// "old" and "new" it holds; exactly one must be there.
func servedAccount(t *testing.T, dir string) string {
	t.Helper()
	p := startServe(t, dir)
	p.waitReady(t)
	var found []string
	for _, id := range []string{"old", "new"} {
		if code := do(t, "GET", p.base+"/api/admin/accounts/"+id, adminToken, nil, nil); code == 200 {
			found = append(found, id)
		}
	}
	p.cmd.Process.Kill()
	p.waitExit(t, 10*time.Second)
	if len(found) != 1 {
		t.Fatalf("serve after the restore holds accounts %v, want exactly one of old and new\n%s", found, p.stderr)
	}
	return found[0]
}

// startRestore starts `meterd restore --force` of backup into dir.
func startRestore(t *testing.T, backup, dir string, env ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "restore", "--force", "--from", backup, "--data-dir", dir)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// killedBySignal reports whether a finished command died of SIGKILL.
func killedBySignal(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestRestore_KillNine kills `meterd restore --force` at random moments,
// and then exactly between its steps: the next serve has the old ledger
// or the restored one, never an empty one.
func TestRestore_KillNine(t *testing.T) {
	src := t.TempDir()
	oldFile, backup := filepath.Join(src, "old.db"), filepath.Join(src, "backup.db")
	writeLedger(t, oldFile, "old", 500)
	writeLedger(t, backup, "new", 20000) // big enough that the copy takes a while

	// One undisturbed restore, to know how long the whole thing takes.
	dir := t.TempDir()
	copyTo(t, oldFile, filepath.Join(dir, ledger.FileName))
	start := time.Now()
	cmd, out := startRestore(t, backup, dir)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	full := time.Since(start)
	if got := servedAccount(t, dir); got != "new" {
		t.Fatalf("a finished restore serves %q", got)
	}

	t.Run("random moments", func(t *testing.T) {
		counts := map[string]int{}
		deadline := time.Now().Add(90 * time.Second)
		for round := 0; round < 24 && time.Now().Before(deadline); round++ {
			dir := t.TempDir()
			copyTo(t, oldFile, filepath.Join(dir, ledger.FileName))
			cmd, out := startRestore(t, backup, dir)
			time.Sleep(time.Duration(rand.Int64N(int64(full) * 11 / 10)))
			cmd.Process.Kill()
			err := cmd.Wait()
			if err != nil && !killedBySignal(err) {
				t.Fatalf("round %d: restore failed on its own: %v\n%s", round, err, out)
			}
			got := servedAccount(t, dir)
			counts[got]++
			// A later restore cleans up after the killed one.
			if round%6 == 5 {
				cmd, out := startRestore(t, backup, dir)
				if err := cmd.Wait(); err != nil {
					t.Fatalf("round %d: restore after a kill: %v\n%s", round, err, out)
				}
				if got := servedAccount(t, dir); got != "new" {
					t.Fatalf("round %d: restore after a kill serves %q", round, got)
				}
			}
		}
		if n := counts["old"] + counts["new"]; n < 20 {
			t.Fatalf("only %d rounds in the time allowed", n)
		}
		t.Logf("full restore %v; after a kill serve had the old ledger %d times, the restored one %d times",
			full, counts["old"], counts["new"])
	})

	for step, want := range map[string]string{
		ledger.RestoreStaged: "old", ledger.RestoreKept: "old", ledger.RestoreInstalled: "new",
	} {
		t.Run("killed after "+step, func(t *testing.T) {
			dir := t.TempDir()
			copyTo(t, oldFile, filepath.Join(dir, ledger.FileName))
			cmd, out := startRestore(t, backup, dir, "METER_TEST_RESTORE_KILL_AFTER="+step)
			if err := cmd.Wait(); !killedBySignal(err) {
				t.Fatalf("restore was not killed at %s: %v\n%s", step, err, out)
			}
			if got := servedAccount(t, dir); got != want {
				t.Fatalf("killed after %s: serve has %q, want %q", step, got, want)
			}
		})
	}

	t.Run("fresh directory, killed before install", func(t *testing.T) {
		dir := t.TempDir()
		cmd, out := startRestore(t, backup, dir, "METER_TEST_RESTORE_KILL_AFTER="+ledger.RestoreStaged)
		if err := cmd.Wait(); !killedBySignal(err) {
			t.Fatalf("restore was not killed: %v\n%s", err, out)
		}
		p := startServe(t, dir)
		if err := p.waitExit(t, 15*time.Second); err == nil ||
			!strings.Contains(p.stderr.String(), "meterd restore --from") {
			t.Fatalf("serve beside an unfinished restore: %v\n%s", err, p.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, ledger.FileName)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("serve created a ledger beside an unfinished restore: %v", err)
		}
		cmd, out = startRestore(t, backup, dir)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("restore again: %v\n%s", err, out)
		}
		if got := servedAccount(t, dir); got != "new" {
			t.Fatalf("serve has %q", got)
		}
	})
}
