package ledger_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// accountIDs lists the ids of the accounts in the ledger file at path,
// opened as serve opens it.
func accountIDs(tb testing.TB, path string) []string {
	tb.Helper()
	l, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	accts, err := l.Accounts(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var ids []string
	for _, a := range accts {
		ids = append(ids, a.ID)
	}
	return ids
}

// restoreStoppedAt runs Restore and stops it dead after step, the way a
// kill would: runtime.Goexit skips the error paths' clean-up and runs only
// the deferred unlocks, which a dying process's kernel does too.
func restoreStoppedAt(t *testing.T, backup, dir, step string) {
	t.Helper()
	done := make(chan error, 1)
	stopped := false
	go func() {
		defer close(done)
		done <- ledger.Restore(ctx, backup, dir, ledger.RestoreOptions{Force: true, StepFn: func(s string) {
			if s == step {
				stopped = true
				runtime.Goexit()
			}
		}})
	}()
	if err, ok := <-done; ok || !stopped {
		t.Fatalf("restore did not stop at %q: %v", step, err)
	}
}

func TestRestore_Epoch(t *testing.T) {
	src := mustOpenVerifyLedger(t) // accounts a and b
	backup := mustBackupFile(t, src)
	dir := t.TempDir()
	path := filepath.Join(dir, ledger.FileName)
	at := time.Date(2026, 4, 2, 3, 4, 5, 0, time.UTC)
	var nodes []string
	for i, want := range []uint64{1, 2, 3} {
		// The same epoch-0 backup each time: the epoch still climbs, from
		// the ledger it replaces.
		if err := ledger.Restore(ctx, backup, dir, ledger.RestoreOptions{Force: i > 0, Now: func() time.Time { return at }}); err != nil {
			t.Fatal(err)
		}
		if e, err := ledger.FileEpoch(path); err != nil || e != want {
			t.Fatalf("restore %d: file epoch %d, %v", i+1, e, err)
		}
		l := mustOpenAt(t, path) // a fixed node id (t1), as --node-id gives
		if l.Epoch() != want || !l.RestoredAt().Equal(at) {
			t.Fatalf("restore %d: epoch %d at %v", i+1, l.Epoch(), l.RestoredAt())
		}
		if !strings.HasPrefix(l.NodeID(), "t1.e") || slices.Contains(nodes, l.NodeID()) {
			t.Fatalf("restore %d: node %q, earlier %v", i+1, l.NodeID(), nodes)
		}
		nodes = append(nodes, l.NodeID())
		ev := verifyEvent("a", verifyMarch, "/v1/x", meter.Allowed, false, 200)
		if err := l.Append(ctx, ev, true); err != nil || ev.Node != l.NodeID() {
			t.Fatalf("append: node %q, %v", ev.Node, err)
		}
		l.Close()
	}
	// A backup of a restored ledger carries its epoch on.
	l := mustOpenAt(t, path)
	again := mustBackupFile(t, l)
	l.Close()
	fresh := t.TempDir()
	if err := ledger.Restore(ctx, again, fresh, ledger.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if e, err := ledger.FileEpoch(filepath.Join(fresh, ledger.FileName)); err != nil || e != 4 {
		t.Fatalf("restore of a restored ledger's backup: epoch %d, %v", e, err)
	}
	if src.Epoch() != 0 || !src.RestoredAt().IsZero() {
		t.Fatalf("never-restored ledger: epoch %d at %v", src.Epoch(), src.RestoredAt())
	}
}

// TestRestore_StoppedBetweenSteps stops a forced restore after each step:
// meter.db is the old ledger or the restored one, never missing or empty.
func TestRestore_StoppedBetweenSteps(t *testing.T) {
	src := mustOpenVerifyLedger(t) // accounts a and b
	backup := mustBackupFile(t, src)
	for step, want := range map[string][]string{
		ledger.RestoreStaged:    {"old"},
		ledger.RestoreKept:      {"old"},
		ledger.RestoreInstalled: {"a", "b"},
	} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, ledger.FileName)
			old := mustOpenAt(t, path)
			mustPutAccounts(t, old, "old")
			old.Close()
			restoreStoppedAt(t, backup, dir, step)
			if got := accountIDs(t, path); !slices.Equal(got, want) {
				t.Fatalf("after a stop at %s, meter.db holds accounts %v, want %v (dir %v)", step, got, want, dirNames(t, dir))
			}
			// Running the restore again finishes the job and clears the
			// staged leftover.
			if err := ledger.Restore(ctx, backup, dir, ledger.RestoreOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			if got := accountIDs(t, path); !slices.Equal(got, []string{"a", "b"}) {
				t.Fatalf("after the second restore: %v", got)
			}
			for _, name := range dirNames(t, dir) {
				if strings.Contains(name, ".restore-") && !strings.Contains(name, ".pre-restore-") {
					t.Fatalf("staged leftover %s survived a restore", name)
				}
			}
		})
	}
}

// TestOpen_InterruptedRestore: a missing meter.db beside a restore's files
// is not a first start; Open refuses to create an empty ledger there.
func TestOpen_InterruptedRestore(t *testing.T) {
	src := mustOpenVerifyLedger(t)
	backup := mustBackupFile(t, src)
	t.Run("staged copy, no ledger", func(t *testing.T) {
		dir := t.TempDir()
		restoreStoppedAt(t, backup, dir, ledger.RestoreStaged)
		_, err := ledger.Open(filepath.Join(dir, ledger.FileName), ledger.Options{})
		if !errors.Is(err, ledger.ErrInterruptedRestore) || !strings.Contains(err.Error(), "meterd restore") {
			t.Fatalf("open: %v, want ErrInterruptedRestore saying what to do", err)
		}
		if _, err := os.Stat(filepath.Join(dir, ledger.FileName)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused open created the ledger: %v", err)
		}
		if _, err := ledger.VerifyFile(ctx, filepath.Join(dir, ledger.FileName)); !errors.Is(err, ledger.ErrInterruptedRestore) {
			t.Fatalf("verify: %v", err)
		}
		if err := ledger.Restore(ctx, backup, dir, ledger.RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := dirNames(t, dir); !slices.Equal(got, []string{ledger.FileName}) {
			t.Fatalf("data dir holds %v", got)
		}
	})
	t.Run("pre-restore ledger, no ledger", func(t *testing.T) {
		dir := t.TempDir()
		kept := filepath.Join(dir, ledger.FileName+".pre-restore-20260101T000000Z")
		if err := os.Link(src.Path(), kept); err != nil {
			t.Fatal(err)
		}
		_, err := ledger.Open(filepath.Join(dir, ledger.FileName), ledger.Options{})
		if !errors.Is(err, ledger.ErrInterruptedRestore) || !strings.Contains(err.Error(), filepath.Base(kept)) {
			t.Fatalf("open: %v, want ErrInterruptedRestore naming %s", err, filepath.Base(kept))
		}
	})
}

// TestRestore_NoHardLinks: where the file system refuses hard links, the
// old ledger is kept as a copy before the rename.
func TestRestore_NoHardLinks(t *testing.T) {
	src := mustOpenVerifyLedger(t)
	backup := mustBackupFile(t, src)
	dir := t.TempDir()
	path := filepath.Join(dir, ledger.FileName)
	old := mustOpenAt(t, path)
	mustPutAccounts(t, old, "old")
	old.Close()
	defer ledger.SetLinkFile(func(string, string) error { return &os.LinkError{Op: "link", Err: errors.ErrUnsupported} })()
	if err := ledger.Restore(ctx, backup, dir, ledger.RestoreOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	names := dirNames(t, dir)
	if len(names) != 2 || !strings.HasPrefix(names[1], ledger.FileName+".pre-restore-") {
		t.Fatalf("data dir holds %v", names)
	}
	if got := accountIDs(t, filepath.Join(dir, names[1])); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("kept copy holds %v", got)
	}
	if got := accountIDs(t, path); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("meter.db holds %v", got)
	}
}
