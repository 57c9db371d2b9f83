package meter

import (
	"context"
	"time"
)

// Counter is an account's usage in one billing period.
type Counter struct {
	AccountID   string
	PeriodStart time.Time
	// Calls counts allowed calls (including overage calls).
	Calls int64
	// Overage counts allowed calls past a soft limit.
	Overage int64
	// OverageMicros sums the price of each overage call at the rate of the
	// plan in force when it was made (see Counter.Count).
	OverageMicros int64
	// UnpricedOverage counts overage calls recorded before calls carried
	// their price (ledger records of the first layout); they are priced at
	// the account's plan (PricedOverageMicros).
	UnpricedOverage int64
	// Denied counts refused calls; they are not usage.
	Denied     int64
	LastCallAt time.Time
}

// CounterKey names one account's counter for one period.
type CounterKey struct {
	AccountID   string
	PeriodStart time.Time
}

// IdempotencyRecord is what the ledger remembers of a call that carried an
// idempotency id, so a retry gets the first answer back.
type IdempotencyRecord struct {
	Node     string
	Seq      uint64
	Time     time.Time
	Decision Decision
	Overage  bool
}

// Store is the durable home of accounts, keys, events and counters. The
// ledger package implements it on bbolt.
type Store interface {
	// Append records ev in the next group commit, with its idempotency
	// record; its period counter and daily aggregates count it from that
	// commit on. With wait it returns
	// once the commit holding ev is durable, with ev.Seq and ev.Node set;
	// without wait it returns once ev is queued.
	Append(ctx context.Context, ev *Event, wait bool) error
	// Accounts and Keys return everything stored; the meter loads them at
	// start (O(accounts)).
	Accounts(ctx context.Context) ([]Account, error)
	Keys(ctx context.Context) ([]APIKey, error)
	// PeriodCounters returns the stored counter of each account and
	// period in keys (zero where none), read together: the meter loads
	// every account's current counter with one call at start.
	PeriodCounters(ctx context.Context, keys []CounterKey) ([]Counter, error)
	// Idempotency looks up a call id previously recorded for the account.
	Idempotency(ctx context.Context, accountID, id string) (IdempotencyRecord, bool, error)
	// PutAccount and PutKey create or replace a record durably.
	PutAccount(ctx context.Context, a Account) error
	PutKey(ctx context.Context, k APIKey) error
	// NodeID is the node id the store stamps on events.
	NodeID() string
}

// BatchStore is a Store that can queue several events at once, in order,
// and wait for them all: a batch's events then commit in the order they
// were counted. The ledger implements it; the meter falls back to one
// Append per event otherwise.
type BatchStore interface {
	// AppendAll is Append with wait for each of evs; errs[i] is evs[i]'s.
	AppendAll(ctx context.Context, evs []*Event) []error
}

// EventLog is the ledger as the exporters see it: events in commit order
// and named cursors that remember how far each consumer has got.
type EventLog interface {
	// EventsAfter returns up to limit events with Seq > after, in Seq order.
	EventsAfter(ctx context.Context, after uint64, limit int) ([]Event, error)
	// LastSeq is the Seq of the newest committed event (0 if none).
	LastSeq(ctx context.Context) (uint64, error)
	// Cursor returns the named cursor (0 if never set).
	Cursor(ctx context.Context, name string) (uint64, error)
	// SetCursor durably moves the named cursor; it is committed by the
	// ledger writer like any other write.
	SetCursor(ctx context.Context, name string, seq uint64) error
}
