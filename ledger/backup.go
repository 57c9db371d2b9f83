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
	"strings"
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
	// Now is the restore's clock (default time.Now), recorded as the
	// ledger's RestoredAt.
	Now func() time.Time
	// StepFn, if set, is called after each step of the install
	// (RestoreStaged, RestoreKept, RestoreInstalled): fault tests stop or
	// kill the process there.
	StepFn func(step string)
}

// The steps of Restore, in order, as StepFn sees them.
const (
	// RestoreStaged: the backup is copied beside the ledger, synced,
	// checked and stamped with its new epoch; nothing is replaced yet.
	RestoreStaged = "staged"
	// RestoreKept: the old ledger also has its pre-restore name (a hard
	// link); meter.db is still the old ledger.
	RestoreKept = "kept"
	// RestoreInstalled: meter.db is the restored ledger.
	RestoreInstalled = "installed"
)

// ErrInterruptedRestore: the ledger file is missing while a restore's
// staged copy or a pre-restore ledger sits beside it, so opening would
// create an empty ledger in place of the real one.
var ErrInterruptedRestore = errors.New("the ledger file is missing but a restore left files beside it")

// Restore installs the backup at backupPath as the ledger of dataDir
// (dataDir/meter.db). meterd must not be running on dataDir: a ledger held
// open by a process fails with ErrInUse.
//
// The backup is copied next to the target, fsynced, opened as a ledger,
// and stamped with a new epoch (epoch.go) before anything is replaced: a
// file that is not a meterd ledger, or is damaged, fails with ErrCorrupt
// and leaves dataDir as it was. An existing ledger (replaced only with
// opts.Force, else ErrLedgerExists) first gets a second name,
// meter.db.pre-restore-<time>, by a hard link; then the copy takes the
// target's name in one rename, which replaces the old name atomically.
// At every moment meter.db is either the old ledger or the restored one,
// so a crash at any point leaves a ledger that serve can open.
func Restore(ctx context.Context, backupPath, dataDir string, opts RestoreOptions) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	unlockDir, err := lockDir(dataDir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer unlockDir()
	target := filepath.Join(dataDir, FileName)
	floor, err := replacedEpoch(target)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	unlock, exists, err := lockExisting(target)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer unlock()
	if exists && !opts.Force {
		return fmt.Errorf("restore: %s: %w", target, ErrLedgerExists)
	}
	if err := removeStaged(dataDir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	tmp, err := stageCopy(ctx, backupPath, dataDir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := install(ctx, tmp, target, exists, floor, opts); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// replacedEpoch is the epoch of the ledger a restore replaces, so the
// restored one takes a higher one even when the backup predates an
// earlier restore. A damaged ledger's epoch is unknown: 0.
func replacedEpoch(target string) (uint64, error) {
	if _, err := os.Stat(target); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	e, err := FileEpoch(target)
	if errors.Is(err, ErrInUse) {
		return 0, err
	}
	return e, nil
}

// lockDir takes an exclusive lock on the data directory for the length of
// a restore: two restores into one directory would trip over each other's
// staged files.
func lockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		d.Close()
		return nil, fmt.Errorf("%s: another restore is running", dir)
	}
	return func() { d.Close() }, nil
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

// stagedPrefix and keptPrefix name the files a restore leaves beside the
// ledger: a staged copy (garbage once a restore is over) and the replaced
// ledger.
const (
	stagedPrefix = FileName + ".restore-"
	keptPrefix   = FileName + ".pre-restore-"
)

// removeStaged deletes staged copies left by restores that were killed:
// the caller holds the directory lock, so none of them is in use.
func removeStaged(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), stagedPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkInterruptedRestore is Open's guard for a missing ledger file: if a
// restore's files sit beside it, creating a fresh ledger would hide the
// real one, so it fails with ErrInterruptedRestore and says what to do.
func checkInterruptedRestore(path string) error {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil // the directory is missing too: a first start
	}
	base := filepath.Base(path)
	var staged, kept []string
	for _, e := range entries {
		switch name := e.Name(); {
		case strings.HasPrefix(name, base+".restore-"):
			staged = append(staged, name)
		case strings.HasPrefix(name, base+".pre-restore-"):
			kept = append(kept, name)
		}
	}
	switch {
	case len(kept) > 0:
		return fmt.Errorf("open %s: %w: %s holds the ledger as it was before a restore; rename it to %s to go on with it, or run `meterd restore --from <backup>` again",
			path, ErrInterruptedRestore, kept[len(kept)-1], base)
	case len(staged) > 0:
		return fmt.Errorf("open %s: %w: %s is an unfinished restore; run `meterd restore --from <backup>` again (it removes the leftover), or delete it to start an empty ledger",
			path, ErrInterruptedRestore, staged[0])
	}
	return nil
}

// stageCopy copies the backup into dir under a temporary name, syncs it,
// and checks that it opens as a meterd ledger. It returns the copy's path.
func stageCopy(ctx context.Context, backupPath, dir string) (string, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, stagedPrefix+hex.EncodeToString(rnd[:]))
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

// install stamps the staged copy tmp with its epoch, gives an existing
// target its pre-restore name by a hard link, then renames tmp over
// target, syncing the directory after each step. The link comes first so
// that the old ledger is never without a name; the rename replaces
// target's name in one step, so it never names nothing.
func install(ctx context.Context, tmp, target string, exists bool, floor uint64, opts RestoreOptions) error {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	step := func(string) {}
	if opts.StepFn != nil {
		step = opts.StepFn
	}
	at := now().UTC()
	if _, err := stampRestore(tmp, floor, at); err != nil {
		return err
	}
	dir := filepath.Dir(target)
	step(RestoreStaged)
	if exists {
		if err := keepOld(ctx, target, at); err != nil {
			return err
		}
		if err := syncDir(dir); err != nil {
			return err
		}
		step(RestoreKept)
	}
	if err := os.Rename(tmp, target); err != nil {
		return err
	}
	step(RestoreInstalled)
	return syncDir(dir)
}

// linkFile is os.Link; tests replace it to act as a file system without
// hard links.
var linkFile = os.Link

// keepOld gives the ledger at target a second name,
// meter.db.pre-restore-<time>, picking a free one. Where the file system
// has no hard links (some network and FUSE mounts) it keeps a synced copy
// instead: slower, but target is still never without its old ledger.
func keepOld(ctx context.Context, target string, at time.Time) error {
	base := filepath.Join(filepath.Dir(target), keptPrefix+at.Format("20060102T150405Z"))
	name := base
	for i := 2; ; i++ {
		err := linkFile(target, name)
		if errors.Is(err, os.ErrExist) {
			name = fmt.Sprintf("%s-%d", base, i)
			continue
		}
		if err != nil {
			if cerr := copyFile(ctx, target, name); cerr != nil {
				os.Remove(name)
				return fmt.Errorf("keep the old ledger: link: %v; copy: %w", err, cerr)
			}
		}
		return nil
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
