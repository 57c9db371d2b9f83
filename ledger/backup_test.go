package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// mustBackupFile backs l up into a file in a temp dir and returns its path.
func mustBackupFile(tb testing.TB, l *ledger.Ledger) string {
	tb.Helper()
	var buf bytes.Buffer
	n, err := l.Backup(context.Background(), &buf)
	if err != nil || n != int64(buf.Len()) {
		tb.Fatalf("backup: %d bytes reported, %d written, %v", n, buf.Len(), err)
	}
	path := filepath.Join(tb.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// dirNames lists a directory's entries.
func dirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestLedger_Backup(t *testing.T) {
	ctx := context.Background()
	t.Run("restores to the same ledger", func(t *testing.T) {
		l := mustOpenVerifyLedger(t)
		backup := mustBackupFile(t, l)
		dir := t.TempDir()
		if err := ledger.Restore(ctx, backup, dir, ledger.RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := dirNames(t, dir); !slices.Equal(got, []string{ledger.FileName}) {
			t.Fatalf("data dir holds %v", got)
		}
		r := mustOpenAt(t, filepath.Join(dir, ledger.FileName))
		rep := mustVerify(t, r)
		if !rep.OK || rep.Events != 14 || rep.LastSeq != 14 || rep.Accounts != 2 {
			t.Fatalf("restored: %+v", rep)
		}
		// A new epoch, and a node id of its own (epoch.go).
		if r.Epoch() != 1 || l.Epoch() != 0 || !strings.HasPrefix(r.NodeID(), l.NodeID()+".e1.") {
			t.Fatalf("restored: epoch %d (original %d), node %q (original %q)", r.Epoch(), l.Epoch(), r.NodeID(), l.NodeID())
		}
		for _, acct := range []string{"a", "b"} {
			want, _ := l.Counter(ctx, acct, verifyMarch)
			got, err := r.Counter(ctx, acct, verifyMarch)
			if err != nil || got != want {
				t.Fatalf("counter %s: %+v, want %+v (%v)", acct, got, want, err)
			}
		}
		// The restored ledger goes on from where the backup stopped.
		ev := verifyEvent("a", verifyMarch.Add(72*time.Hour), "/v1/things", meter.Allowed, false, 200)
		if err := r.Append(ctx, ev, true); err != nil || ev.Seq != 15 {
			t.Fatalf("append after restore: seq %d, %v", ev.Seq, err)
		}
		// The original's 15th event has the same sequence, not the same id.
		orig := verifyEvent("a", verifyMarch.Add(72*time.Hour), "/v1/things", meter.Allowed, false, 200)
		if err := l.Append(ctx, orig, true); err != nil || orig.Seq != 15 || orig.ID() == ev.ID() {
			t.Fatalf("original %q (seq %d), restored %q: %v", orig.ID(), orig.Seq, ev.ID(), err)
		}
	})
	t.Run("snapshot does not block writes", func(t *testing.T) {
		l := mustOpenVerifyLedger(t)
		w := &gatedWriter{started: make(chan struct{}), release: make(chan struct{})}
		type result struct {
			n   int64
			err error
		}
		done := make(chan result, 1)
		go func() {
			n, err := l.Backup(ctx, w)
			done <- result{n, err}
		}()
		<-w.started // the snapshot's read transaction is open
		for i := range 50 {
			ev := verifyEvent("b", verifyMarch.Add(time.Duration(100+i)*time.Hour), "/v1/x", meter.Allowed, false, 200)
			appended := make(chan error, 1)
			go func() { appended <- l.Append(ctx, ev, true) }()
			select {
			case err := <-appended:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a commit waited for the backup")
			}
		}
		close(w.release)
		res := <-done
		if res.err != nil || res.n != int64(w.buf.Len()) {
			t.Fatalf("backup: %d bytes, %v", res.n, res.err)
		}
		path := filepath.Join(t.TempDir(), "snap.db")
		if err := os.WriteFile(path, w.buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.VerifyFile(ctx, path)
		if err != nil || !rep.OK || rep.LastSeq != 14 {
			t.Fatalf("snapshot holds last_seq %d, want 14 (the moment it began): %+v %v", rep.LastSeq, rep, err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		l := mustOpenVerifyLedger(t)
		cctx, cancel := context.WithCancel(ctx)
		w := &cancelWriter{cancel: cancel}
		if _, err := l.Backup(cctx, w); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	})
}

// gatedWriter signals its first write and then holds every write until
// released: a client that reads slowly.
type gatedWriter struct {
	buf     bytes.Buffer
	started chan struct{}
	release chan struct{}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if g.buf.Len() == 0 {
		close(g.started)
		<-g.release
	}
	return g.buf.Write(p)
}

// cancelWriter cancels the backup's context on its first write.
type cancelWriter struct {
	cancel context.CancelFunc
	n      int
}

func (c *cancelWriter) Write(p []byte) (int, error) {
	c.cancel()
	c.n += len(p)
	return len(p), nil
}

func TestRestore(t *testing.T) {
	ctx := context.Background()
	src := mustOpenVerifyLedger(t)
	backup := mustBackupFile(t, src)
	t.Run("refuses an existing ledger", func(t *testing.T) {
		dir := t.TempDir()
		existing := mustOpenAt(t, filepath.Join(dir, ledger.FileName))
		mustPutAccounts(t, existing, "old")
		existing.Close()
		err := ledger.Restore(ctx, backup, dir, ledger.RestoreOptions{})
		if !errors.Is(err, ledger.ErrLedgerExists) {
			t.Fatalf("err %v, want ErrLedgerExists", err)
		}
		if got := dirNames(t, dir); !slices.Equal(got, []string{ledger.FileName}) {
			t.Fatalf("data dir holds %v", got)
		}
		// Forced, the old ledger is kept aside and the backup takes its place.
		if err := ledger.Restore(ctx, backup, dir, ledger.RestoreOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		names := dirNames(t, dir)
		if len(names) != 2 || names[0] != ledger.FileName || !strings.HasPrefix(names[1], ledger.FileName+".pre-restore-") {
			t.Fatalf("data dir holds %v", names)
		}
		r := mustOpenAt(t, filepath.Join(dir, ledger.FileName))
		accts, err := r.Accounts(ctx)
		if err != nil || len(accts) != 2 || accts[0].ID != "a" {
			t.Fatalf("restored accounts %+v, %v", accts, err)
		}
	})
	t.Run("refuses a ledger in use", func(t *testing.T) {
		dir := t.TempDir()
		mustOpenAt(t, filepath.Join(dir, ledger.FileName))
		err := ledger.Restore(ctx, backup, dir, ledger.RestoreOptions{Force: true})
		if !errors.Is(err, ledger.ErrInUse) {
			t.Fatalf("err %v, want ErrInUse", err)
		}
	})
	bad := map[string]func(path string) error{
		"garbage":    func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte("meterd"), 2000), 0o600) },
		"empty file": func(p string) error { return os.WriteFile(p, nil, 0o600) },
		"truncated": func(p string) error {
			b, err := os.ReadFile(backup)
			if err != nil {
				return err
			}
			return os.WriteFile(p, b[:len(b)/2], 0o600)
		},
		"foreign bbolt file": func(p string) error {
			db, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				return err
			}
			err = db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err })
			return errors.Join(err, db.Close())
		},
		"empty bbolt file": func(p string) error {
			db, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				return err
			}
			return db.Close()
		},
	}
	for name, make := range bad {
		t.Run(name, func(t *testing.T) {
			from := filepath.Join(t.TempDir(), "bad.db")
			if err := make(from); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := ledger.Restore(ctx, from, dir, ledger.RestoreOptions{}); !errors.Is(err, ledger.ErrCorrupt) {
				t.Fatalf("err %v, want ErrCorrupt", err)
			}
			if got := dirNames(t, dir); len(got) != 0 {
				t.Fatalf("a refused restore left %v", got)
			}
		})
	}
	t.Run("missing backup", func(t *testing.T) {
		dir := t.TempDir()
		err := ledger.Restore(ctx, filepath.Join(dir, "nope.db"), dir, ledger.RestoreOptions{})
		if !errors.Is(err, os.ErrNotExist) || len(dirNames(t, dir)) != 0 {
			t.Fatalf("err %v, dir %v", err, dirNames(t, dir))
		}
	})
}
