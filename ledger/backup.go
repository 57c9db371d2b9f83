package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileName is the ledger file's name inside the data directory.
const FileName = "meter.db"

// ErrLedgerExists: Restore found a ledger in the data directory and was
// not told to replace it.
var ErrLedgerExists = errors.New("a ledger already exists in the data directory")

// Backup writes a consistent snapshot of the ledger to w: a complete bbolt
// file, as of the moment the backup starts, that Open (or Restore) takes
// as it is. It returns the bytes written.
//
// The snapshot is one read-only transaction: the writer goes on committing
// while it streams, because readers never block the writer while the file
// fits Options.InitialMmapSize. Past that, a commit that grows the file
// waits for the backup to end, so a slow client (w) stalls metering;
// back up to local disk and copy from there when the file is that big.
// The transaction also pins the pages it sees, so the file may grow by
// what is written meanwhile. Cancelling ctx stops the copy.
func (l *Ledger) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	tx, err := l.db.Begin(false)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer tx.Rollback()
	n, err := tx.WriteTo(ctxWriter{ctx: ctx, w: w})
	if cerr := ctx.Err(); err != nil && cerr != nil {
		err = cerr // bbolt flattens the writer's error into text
	}
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}

// ctxWriter fails writes once ctx ends, which aborts Tx.WriteTo.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Force replaces an existing ledger, which is kept beside it as
	// meter.db.pre-restore-<UTC time>.
	Force bool
}

// Restore installs the backup at backupPath as the ledger of dataDir
// (dataDir/meter.db). meterd must not be running on dataDir: a ledger held
// open by a process fails with ErrInUse.
//
// The backup is copied next to the target, fsynced, and opened as a
// ledger before anything is replaced: a file that is not a meterd ledger,
// or is damaged, fails with ErrCorrupt and leaves dataDir as it was. The
// copy then takes the target's name in one atomic rename. An existing
// ledger fails with ErrLedgerExists unless opts.Force is set.
func Restore(ctx context.Context, backupPath, dataDir string, opts RestoreOptions) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	target := filepath.Join(dataDir, FileName)
	unlock, exists, err := lockExisting(target)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer unlock()
	if exists && !opts.Force {
		return fmt.Errorf("restore: %s: %w (use force to replace it)", target, ErrLedgerExists)
	}
	tmp, err := stageCopy(ctx, backupPath, dataDir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := install(tmp, target, exists); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// lockExisting takes the same exclusive lock bbolt takes on an open
// ledger, so a running meterd is detected rather than pulled from under
// its feet. It holds the lock until unlock is called.
func lockExisting(path string) (unlock func(), exists bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, true, fmt.Errorf("%s: %w", path, ErrInUse)
	}
	return func() { f.Close() }, true, nil
}

// stageCopy copies the backup into dir under a temporary name, syncs it,
// and checks that it opens as a meterd ledger. It returns the copy's path.
func stageCopy(ctx context.Context, backupPath, dir string) (string, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, FileName+".restore-"+hex.EncodeToString(rnd[:]))
	if err := copyFile(ctx, backupPath, tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := checkOpens(tmp); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("backup %s: %w", backupPath, err)
	}
	return tmp, nil
}

// checkOpens proves a file is a meterd ledger: read-only first, so an
// empty or foreign bbolt file is refused rather than initialised, then as
// meterd serve opens it.
func checkOpens(path string) error {
	db, err := openReadOnly(path)
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	l, err := Open(path, Options{})
	if err != nil {
		return err
	}
	return l.Close()
}

func copyFile(ctx context.Context, from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(ctxWriter{ctx: ctx, w: dst}, src); err != nil {
		dst.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// install renames tmp to target, first moving an existing target aside,
// and syncs the directory so the renames survive a crash.
func install(tmp, target string, exists bool) error {
	if err := bumpEpoch(tmp, time.Now()); err != nil {
		return err
	}
	if exists {
		aside := target + ".pre-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(target, aside); err != nil {
			return err
		}
		if err := os.Rename(tmp, target); err != nil {
			os.Rename(aside, target)
			return err
		}
	} else if err := os.Rename(tmp, target); err != nil {
		return err
	}
	return syncDir(filepath.Dir(target))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
