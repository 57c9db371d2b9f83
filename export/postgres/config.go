package postgres

import (
	"errors"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultBatchSize     = 20_000
	DefaultParallel      = 2
	DefaultFlushInterval = 2 * time.Second
	DefaultMaxBackoff    = 30 * time.Second
	DefaultCursorName    = "postgres"
	DefaultWriteTimeout  = time.Minute
	DefaultMaxBacklog    = 50_000_000
)

// minBackoff is the first retry delay after a failed batch; it doubles up
// to Config.MaxBackoff.
const minBackoff = 250 * time.Millisecond

// ErrNoDatabaseURL: New was called without Config.DatabaseURL.
var ErrNoDatabaseURL = errors.New("postgres export: no database url")

// Config configures an Exporter. Zero values take the defaults above.
type Config struct {
	// DatabaseURL is a libpq URL or DSN. Runtime parameters such as
	// search_path may be set in it.
	DatabaseURL string
	// BatchSize is the most events written in one Postgres transaction
	// (default 20,000, a few tenths of a second of Postgres work). A batch
	// is written as soon as it is full. It matters when catching up: in
	// steady state FlushInterval writes smaller ones. In the benchmark,
	// 20,000 exported about 15% faster than 5,000.
	BatchSize int
	// Parallel is how many batches are written at once, each in its own
	// transaction on its own connection (default 2). The cursor moves in
	// order whatever the order of the commits. 1 writes one at a time.
	Parallel int
	// FlushInterval is the longest a recorded event waits before a
	// partial batch is written (default 2s).
	FlushInterval time.Duration
	// MaxBackoff caps the delay between retries while Postgres fails
	// (default 30s). Delays start at 250ms, double, and carry jitter.
	MaxBackoff time.Duration
	// CursorName names the ledger cursor holding the last exported Seq
	// (default "postgres"). Two exporters with different names export
	// independently.
	CursorName string
	// WriteTimeout bounds one batch transaction, so a Postgres that hangs
	// instead of failing is retried like one that fails (default 1m).
	WriteTimeout time.Duration
	// MaxBacklog is the backlog, in events, past which Status reports
	// OverBound (default 50,000,000, roughly 10 GB of ledger). The exporter
	// never drops or skips events to get under it: exactly-once export
	// forbids it, so the ledger keeps every unexported event and grows.
	// OverBound is the signal to act (fix Postgres, add disk) before the
	// disk fills.
	MaxBacklog uint64
	// Now returns the current time (default time.Now); the lag is measured
	// with it.
	Now func() time.Time
}

// withDefaults returns c with zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.CursorName == "" {
		c.CursorName = DefaultCursorName
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxBacklog == 0 {
		c.MaxBacklog = DefaultMaxBacklog
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// pollInterval is how often an idle exporter checks whether a full batch
// is waiting: often enough that a burst is exported well before
// FlushInterval, rarely enough to cost nothing when idle.
func (c Config) pollInterval() time.Duration {
	return max(min(c.FlushInterval/4, 250*time.Millisecond), 5*time.Millisecond)
}
