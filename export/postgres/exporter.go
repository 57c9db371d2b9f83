package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
)

// defaultConnectTimeout bounds a connection attempt when the URL sets no
// connect_timeout, so an unreachable host fails like a refused one.
const defaultConnectTimeout = 10 * time.Second

// Exporter moves ledger events to Postgres exactly once. Create it with
// New; run Run in one goroutine, or call ExportOnce; Close it after Run has
// returned.
type Exporter struct {
	log    meter.EventLog
	cfg    Config
	logger *slog.Logger
	pool   *pgxpool.Pool
	m      *metrics

	// afterCommitFn, when set, runs after a batch commits in Postgres and
	// before the cursor moves; an error abandons the batch there, as a
	// crash would. Tests set it (see export_test.go).
	afterCommitFn func() error

	// exportMu serialises drains, so Run and an operator's ExportOnce may
	// overlap without moving the cursor out of order.
	exportMu sync.Mutex

	// mu guards the fields below, which Status reads.
	mu         sync.Mutex
	lastErr    error
	lastExport time.Time
	overBound  bool
}

// New returns an exporter of log's events to cfg.DatabaseURL. It does not
// connect: Postgres may be down when meterd starts, and the first batch
// connects (and retries) like any other. Metrics are registered on reg
// when it is not nil.
func New(log meter.EventLog, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Exporter, error) {
	if cfg.DatabaseURL == "" {
		return nil, ErrNoDatabaseURL
	}
	if log == nil {
		return nil, errors.New("postgres export: nil event log")
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres export: parse database url: %w", err)
	}
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		pcfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres export: %w", err)
	}
	return &Exporter{log: log, cfg: cfg, logger: logger, pool: pool, m: m}, nil
}

// Close closes the connection pool. Call it after Run has returned.
func (e *Exporter) Close() {
	e.pool.Close()
}

// Run exports until ctx is done, then returns nil. A batch is written as
// soon as one is full, and a partial one after FlushInterval. Failures are
// retried with backoff and never end Run, except a closed ledger, which is
// returned.
func (e *Exporter) Run(ctx context.Context) error {
	e.logger.Info("postgres export started", "batch_size", e.cfg.BatchSize,
		"flush_interval", e.cfg.FlushInterval, "cursor", e.cfg.CursorName)
	bo := newBackoff(minBackoff, e.cfg.MaxBackoff)
	for {
		_, err := e.drain(ctx, math.MaxUint64)
		e.refreshBacklog(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, meter.ErrClosed):
			return err
		case err != nil:
			delay := bo.next()
			e.logger.Warn("postgres export failed; will retry", "err", err,
				"failures", bo.failures, "retry_in", delay.Round(time.Millisecond))
			if !e.pause(ctx, delay, false) {
				return nil
			}
			continue
		}
		if bo.failures > 0 {
			e.logger.Info("postgres export recovered", "failures", bo.failures)
		}
		bo.reset()
		if !e.pause(ctx, e.cfg.FlushInterval, true) {
			return nil
		}
	}
}

// ExportOnce exports the events recorded before it was called and returns
// how many it moved past the cursor (each is now in Postgres exactly once,
// inserted by this call or, after a replay, by an earlier one). It stops
// at the first error, leaving the cursor after the last committed batch.
func (e *Exporter) ExportOnce(ctx context.Context) (int, error) {
	target, err := e.log.LastSeq(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres export: read last seq: %w", err)
	}
	n, err := e.drain(ctx, target)
	e.refreshBacklog(ctx)
	return n, err
}

// pause waits for d, refreshing the backlog gauges meanwhile, and reports
// false when ctx is done. With wakeOnFull it returns early once a full
// batch is waiting.
func (e *Exporter) pause(ctx context.Context, d time.Duration, wakeOnFull bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(e.cfg.pollInterval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-tick.C:
			if n := e.refreshBacklog(ctx); wakeOnFull && n >= uint64(e.cfg.BatchSize) {
				return true
			}
		}
	}
}
