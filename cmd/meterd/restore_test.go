package main_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
	account, _ := servedAccountLog(t, dir)
	return account
}

// servedAccountLog is servedAccount, also returning serve's log.
func servedAccountLog(t *testing.T, dir string) (string, string) {
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
	return found[0], p.stderr.String()
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
			got, log := servedAccountLog(t, dir)
			if got != want {
				t.Fatalf("killed after %s: serve has %q, want %q", step, got, want)
			}
			// Before the rename, serve says the restore did not happen.
			if warned := strings.Contains(log, "a restore did not finish"); warned != (want == "old") {
				t.Fatalf("killed after %s: warned %v about the unfinished restore:\n%s", step, warned, log)
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

// trackN sends n tracks of key from 8 clients and fails on any non-200.
func trackN(t *testing.T, base, key string, n int) {
	t.Helper()
	errc := make(chan error, 8)
	for c := range 8 {
		go func() {
			for i := c; i < n; i += 8 {
				body := `{"api_key":"` + key + `","endpoint":"/v1/orders","method":"POST","status":201}`
				resp, err := http.Post(base+"/v1/track", "application/json", strings.NewReader(body))
				if err != nil {
					errc <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errc <- fmt.Errorf("track: %d", resp.StatusCode)
					return
				}
			}
			errc <- nil
		}()
	}
	for range 8 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// waitRows waits until Postgres holds want call rows of account.
func waitRows(t *testing.T, conn *pgx.Conn, account string, want int64) {
	t.Helper()
	var rows int64
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM eco_api_usage WHERE account_id = $1", account).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows >= want {
			return
		}
	}
	t.Fatalf("postgres holds %d rows of %s, want %d", rows, account, want)
}

func stopServe(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.waitExit(t, 30*time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.stderr)
	}
}

// TestRestore_ExportsEveryCallAfterRestore: backup, 2,000 calls exported,
// restore of the backup, 2,000 more calls: Postgres holds all 4,000 under
// 4,000 distinct ids (before the epoch, the restored ledger reused the ids
// of the first 2,000 and Postgres dropped the new calls), and the
// restored ledger verifies.
func TestRestore_ExportsEveryCallAfterRestore(t *testing.T) {
	dbURL := mustSchema(t)
	runCmd(t, "migrate", "--database-url", dbURL)
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	dir := t.TempDir()
	exportFlags := []string{"--database-url", dbURL, "--export-interval", "100ms"}

	p := startServe(t, dir, exportFlags...)
	p.waitReady(t)
	key := setupAccount(t, p, "acme", "pro")
	backup := filepath.Join(t.TempDir(), "backup.db")
	req, _ := http.NewRequest("GET", p.base+"/api/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("backup: %v %v", resp, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || os.WriteFile(backup, b, 0o600) != nil {
		t.Fatalf("backup body: %v", err)
	}
	trackN(t, p.base, key, 2000)
	waitRows(t, conn, "acme", 2000)
	stopServe(t, p)

	if out, errOut, code := runOps(t, "restore", "--force", "--from", backup, "--data-dir", dir); code != 0 || !strings.Contains(out, "epoch 1") {
		t.Fatalf("restore: exit %d %q %q", code, out, errOut)
	}
	p = startServe(t, dir, exportFlags...)
	p.waitReady(t)
	trackN(t, p.base, key, 2000)
	waitRows(t, conn, "acme", 4000)
	stopServe(t, p)

	var rows, ids, nodes int64
	if err := conn.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT event_id), count(DISTINCT split_part(event_id, '-', 1))
		FROM eco_api_usage WHERE account_id = 'acme'`).Scan(&rows, &ids, &nodes); err != nil {
		t.Fatal(err)
	}
	if rows != 4000 || ids != 4000 || nodes != 2 {
		t.Fatalf("postgres holds %d rows, %d distinct ids, %d node ids; want 4000, 4000, 2", rows, ids, nodes)
	}
	out, errOut, code := runOps(t, "verify", "--data-dir", dir)
	if rep := decodeReport(t, out); code != 0 || !rep.OK || rep.Events != 2000 {
		t.Fatalf("verify of the restored ledger: exit %d %+v %q", code, rep, errOut)
	}
}
