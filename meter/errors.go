package meter

import (
	"errors"
	"fmt"
)

// Domain errors. Callers test them with errors.Is; httpapi maps each to one
// HTTP status in a single place.
var (
	// ErrQuotaExceeded: a hard-limited account has used its period's calls.
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrUnknownKey: the API key is missing, unknown or revoked. The three
	// cases share one error so a caller cannot probe which keys exist.
	ErrUnknownKey = errors.New("unknown or revoked api key")
	// ErrAccountNotFound: no account has the given id.
	ErrAccountNotFound = errors.New("account not found")
	// ErrAccountExists: an account with the given id already exists.
	ErrAccountExists = errors.New("account already exists")
	// ErrKeyNotFound: no API key has the given id.
	ErrKeyNotFound = errors.New("api key not found")
	// ErrUnknownPlan: the plan name is not configured.
	ErrUnknownPlan = errors.New("unknown plan")
	// ErrClosed: the meter or its store has been closed.
	ErrClosed = errors.New("meter closed")
	// ErrOverloaded: the ledger queue is full; retry shortly.
	ErrOverloaded = errors.New("ledger queue full")
	// ErrDiskFull: the ledger's disk is full (a commit failed with ENOSPC)
	// or below its free-space floor; writes
	// are refused (reads keep working) until space returns. It wraps
	// ErrOverloaded: callers should retry later.
	ErrDiskFull = fmt.Errorf("%w: the ledger's disk is full or below its free-space floor", ErrOverloaded)
	// ErrAccountDeleted: the account is deleted; it can be read, not changed.
	ErrAccountDeleted = errors.New("account deleted")
	// ErrLimitReached: a configured resource limit (accounts, keys) is reached.
	ErrLimitReached = errors.New("resource limit reached")
	// ErrUnavailable: the store cannot commit (an I/O error other than a
	// full disk) or is still retrying a failed commit; nothing of the call
	// was counted. Retry later.
	ErrUnavailable = errors.New("ledger unavailable")
)

// ValidationError reports bad input: which field, and what is wrong with it.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Message)
}

// Invalid returns a *ValidationError for field.
func Invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}
