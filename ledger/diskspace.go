package ledger

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meterd/meterd/meter"
)

// ErrDiskFull: the ledger's file system has less free space than
// Options.MinFreeBytes, so writes are refused before the disk is actually
// full (a bbolt commit that hits ENOSPC half-way is far worse). It wraps
// meter.ErrOverloaded: callers answer 503 with Retry-After, and writes
// resume by themselves once space returns. Reads are not affected.
var ErrDiskFull = meter.ErrDiskFull

// diskProbeEvery bounds how often the free-space probe runs: every write
// is checked before it is queued, and a statfs per write is waste.
const diskProbeEvery = time.Second

// diskProbe caches the last free-space reading. Readers (every write
// before it is queued, metrics scrapes) take the cached reading without locking;
// a stale one is refreshed by one caller at a time.
type diskProbe struct {
	last atomic.Pointer[diskReading]
	// mu serialises refreshes, so a stale reading costs one probe, not
	// one per caller.
	mu sync.Mutex
}

// diskReading is one probe's result; it is never modified once stored.
type diskReading struct {
	at   time.Time
	free uint64
	err  error
}

// checkDiskFloor fails with ErrDiskFull while free space is below the
// floor. A probe that fails lets writes through: a broken statfs must not
// stop metering (the gauge shows the failure instead).
func (l *Ledger) checkDiskFloor() error {
	floor := l.opts.MinFreeBytes
	if floor == 0 {
		return nil
	}
	free, err := l.FreeBytes()
	if err != nil || free >= floor {
		return nil
	}
	return fmt.Errorf("%w (%d bytes free, floor %d)", ErrDiskFull, free, floor)
}

// FreeBytes reports the free space of the file system holding the ledger,
// as seen by Options.FreeSpace, sampled at most once a second.
func (l *Ledger) FreeBytes() (uint64, error) {
	if r := l.disk.last.Load(); r != nil && time.Since(r.at) < diskProbeEvery {
		return r.free, r.err
	}
	l.disk.mu.Lock()
	defer l.disk.mu.Unlock()
	r := l.disk.last.Load()
	if r == nil || time.Since(r.at) >= diskProbeEvery {
		free, err := l.probeFreeSpace()
		r = &diskReading{at: time.Now(), free: free, err: err}
		l.disk.last.Store(r)
	}
	return r.free, r.err
}

// MinFreeBytes is the configured disk-space floor (0: off).
func (l *Ledger) MinFreeBytes() uint64 { return l.opts.MinFreeBytes }

func (l *Ledger) probeFreeSpace() (uint64, error) {
	probe := l.opts.FreeSpace
	if probe == nil {
		probe = StatfsFree
	}
	free, err := probe(filepath.Dir(l.path))
	if err != nil {
		return 0, fmt.Errorf("free space: %w", err)
	}
	return free, nil
}

// StatfsFree is the default Options.FreeSpace: the bytes available to an
// unprivileged user on the file system holding path (statfs f_bavail), so
// the root-reserved blocks do not count as free.
func StatfsFree(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}
