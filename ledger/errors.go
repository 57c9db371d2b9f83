package ledger

import "errors"

var (
	// ErrInUse: another process holds the ledger file open.
	ErrInUse = errors.New("ledger is in use by another process")
	// ErrCorrupt: the file is truncated, damaged or not a meterd ledger. It
	// is left untouched.
	ErrCorrupt = errors.New("ledger file is corrupt or not a meterd ledger")
)
