package ledger

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/meterd/meterd/meter"
)

var (
	// ErrInUse: another process holds the ledger file open.
	ErrInUse = errors.New("ledger is in use by another process")
	// ErrCorrupt: the file is truncated, damaged or not a meterd ledger. It
	// is left untouched.
	ErrCorrupt = errors.New("ledger file is corrupt or not a meterd ledger")
	// ErrFormatTooNew: the file was written by a newer meterd in a layout
	// this binary does not know (a downgrade). It is left untouched.
	ErrFormatTooNew = errors.New("ledger file format is newer than this meterd")
	// ErrUnavailable: a commit failed with an I/O error other than a full
	// disk (EIO, a failing fsync), or the writer is still retrying such a
	// commit and refuses new writes meanwhile. It is meter.ErrUnavailable,
	// so httpapi answers 503 ledger_unavailable with Retry-After.
	ErrUnavailable = meter.ErrUnavailable
)

// commitError classifies a failed commit: ENOSPC is ErrDiskFull (503
// disk_full), anything else ErrUnavailable. The cause stays wrapped for
// logs and errors.Is.
func commitError(err error) error {
	class := ErrUnavailable
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrDiskFull) {
		class = ErrDiskFull
	}
	return fmt.Errorf("ledger commit: %w: %w", class, err)
}

// stallError is what new writes get while the writer retries a failed
// group: the same class as the failure, saying why.
func stallError(cause error) error {
	class := ErrUnavailable
	if errors.Is(cause, ErrDiskFull) {
		class = ErrDiskFull
	}
	return fmt.Errorf("%w: retrying a failed commit of answered calls", class)
}
