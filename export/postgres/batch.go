package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/meterd/meterd/meter"
)

// stageTable is the per-transaction staging table. ON COMMIT DROP ties its
// life to the transaction that fills it, so it works through transaction
// poolers (PgBouncer) and leaves nothing behind on a pooled connection.
var stageTable = pgx.Identifier{"pg_temp", "meterd_export_stage"}

var stageColumns = []string{
	"event_id", "account_id", "key_id", "endpoint", "method", "status_code",
	"latency_us", "decision", "overage", "period_start", "created_at", "calls",
}

// The staging columns use the "C" collation of the target columns, so the
// sort by event id and the grouping compare bytes, as the indexes do.
const createStageSQL = `CREATE TEMP TABLE meterd_export_stage (
	event_id     text COLLATE "C" NOT NULL,
	account_id   text COLLATE "C" NOT NULL,
	key_id       text COLLATE "C" NOT NULL,
	endpoint     text COLLATE "C" NOT NULL,
	method       text COLLATE "C" NOT NULL,
	status_code  integer          NOT NULL,
	latency_us   bigint           NOT NULL,
	decision     text COLLATE "C" NOT NULL,
	overage      boolean          NOT NULL,
	period_start timestamptz      NOT NULL,
	created_at   timestamptz      NOT NULL,
	calls        bigint           NOT NULL
) ON COMMIT DROP`

// applyTemplate moves the staged batch into eco_api_usage and adds, to
// the aggregates, only the rows it actually inserted (RETURNING). It is one
// statement: every table it writes is locked before the first row is
// inserted, which is what aggregate_daily_usage's lock relies on.
//
// DISTINCT ON keeps one staged row per event id, and the sort by event id
// inserts in index order. The aggregate upserts touch each row once
// (GROUP BY) and in key order, so concurrent exporters (batches in flight,
// other nodes) lock shared rows in the same order and cannot deadlock. The
// expressions match aggregate_daily_usage() in
// migrations/015_denial_counts.sql and meter.Usage.AddEvent: a coalesced
// denial is one row whose calls column counts its denied calls.
//
// The %s is the conflict clause: empty for applyNewSQL, the fast path, or
// ON CONFLICT (event_id) DO NOTHING for applyReplaySQL.
const applyTemplate = `WITH ins AS (
	INSERT INTO eco_api_usage (event_id, account_id, key_id, endpoint, method, status_code,
		response_time_ms, decision, overage, period_start, created_at, calls)
	SELECT DISTINCT ON (event_id) event_id, account_id, NULLIF(key_id, ''), endpoint, method,
		NULLIF(status_code, 0),
		CASE WHEN latency_us > 0 THEN latency_us * 0.001 END,
		decision, overage, period_start, created_at, calls
	FROM pg_temp.meterd_export_stage
	ORDER BY event_id
	%s
	RETURNING account_id, endpoint, method, period_start,
		(created_at AT TIME ZONE 'UTC')::date AS usage_date, decision = 'allowed' AS allowed,
		overage, status_code, (response_time_ms * 1000)::bigint AS latency_us, calls
), delta AS (
	-- One row per account, day, endpoint, method and period: the upserts
	-- below sum these few rows instead of going over the batch again.
	SELECT account_id, usage_date, endpoint, method, period_start,
		count(*) FILTER (WHERE allowed) AS api_calls,
		count(*) FILTER (WHERE allowed AND overage) AS overage_calls,
		coalesce(sum(calls) FILTER (WHERE NOT allowed), 0)::bigint AS denied_calls,
		count(*) FILTER (WHERE allowed AND status_code >= 500) AS errors,
		count(*) FILTER (WHERE allowed AND status_code BETWEEN 400 AND 499) AS client_errors,
		coalesce(sum(latency_us) FILTER (WHERE allowed), 0) AS latency_sum_us,
		count(latency_us) FILTER (WHERE allowed) AS latency_count
	FROM ins
	GROUP BY account_id, usage_date, endpoint, method, period_start
), endpoint_upsert AS (
	INSERT INTO eco_usage_endpoint_daily AS d (account_id, usage_date, endpoint, method,
		api_calls, overage_calls, denied_calls, errors, client_errors, latency_sum_us, latency_count)
	SELECT account_id, usage_date, endpoint, method, sum(api_calls), sum(overage_calls), sum(denied_calls),
		sum(errors), sum(client_errors), sum(latency_sum_us), sum(latency_count)
	FROM delta
	GROUP BY account_id, usage_date, endpoint, method
	ORDER BY account_id, usage_date, endpoint, method
	ON CONFLICT (account_id, usage_date, endpoint, method) DO UPDATE SET
		api_calls = d.api_calls + EXCLUDED.api_calls,
		overage_calls = d.overage_calls + EXCLUDED.overage_calls,
		denied_calls = d.denied_calls + EXCLUDED.denied_calls,
		errors = d.errors + EXCLUDED.errors,
		client_errors = d.client_errors + EXCLUDED.client_errors,
		latency_sum_us = d.latency_sum_us + EXCLUDED.latency_sum_us,
		latency_count = d.latency_count + EXCLUDED.latency_count
), daily_upsert AS (
	INSERT INTO eco_usage_daily AS d (account_id, usage_date,
		api_calls, overage_calls, denied_calls, errors, client_errors, latency_sum_us, latency_count)
	SELECT account_id, usage_date, sum(api_calls), sum(overage_calls), sum(denied_calls),
		sum(errors), sum(client_errors), sum(latency_sum_us), sum(latency_count)
	FROM delta
	GROUP BY account_id, usage_date
	ORDER BY account_id, usage_date
	ON CONFLICT (account_id, usage_date) DO UPDATE SET
		api_calls = d.api_calls + EXCLUDED.api_calls,
		overage_calls = d.overage_calls + EXCLUDED.overage_calls,
		denied_calls = d.denied_calls + EXCLUDED.denied_calls,
		errors = d.errors + EXCLUDED.errors,
		client_errors = d.client_errors + EXCLUDED.client_errors,
		latency_sum_us = d.latency_sum_us + EXCLUDED.latency_sum_us,
		latency_count = d.latency_count + EXCLUDED.latency_count
), counters AS (
	SELECT increment_api_calls(account_id, period_start, calls)
	FROM (
		SELECT account_id, period_start, sum(api_calls)::bigint AS calls
		FROM delta
		GROUP BY account_id, period_start
		HAVING sum(api_calls) > 0
		ORDER BY account_id, period_start
	) per_period
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM counters)`

var (
	// applyNewSQL inserts a batch none of whose events is in Postgres yet,
	// the normal case. A plain insert costs about 40% less per row than
	// ON CONFLICT's speculative insertion; an event already there fails it
	// with a unique violation, and the batch falls back to applyReplaySQL.
	applyNewSQL = fmt.Sprintf(applyTemplate, "")
	// applyReplaySQL skips the events already exported: a replayed batch
	// inserts nothing and changes nothing.
	applyReplaySQL = fmt.Sprintf(applyTemplate, "ON CONFLICT (event_id) DO NOTHING")
)

// savepointSQL and rollbackSQL bracket the fast attempt, so its failure
// leaves the staged batch in place for the replay statement.
const (
	savepointSQL = "SAVEPOINT meterd_new_events"
	rollbackSQL  = "ROLLBACK TO SAVEPOINT meterd_new_events"
)

// writeBatch writes events to Postgres in one transaction and returns how
// many rows it inserted; events already there are skipped. An error means
// the outcome is unknown (a failed COMMIT may have committed): the caller
// retries the same events and the event-id key decides.
func (e *Exporter) writeBatch(ctx context.Context, events []meter.Event) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.WriteTimeout)
	defer cancel()
	// The temp table, the COPY and the INSERT must share one connection:
	// pgx.Tx pins it for the whole transaction.
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	if _, err := tx.Exec(ctx, createStageSQL); err != nil {
		return 0, fmt.Errorf("create staging table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, stageTable, stageColumns, newStageRows(events)); err != nil {
		return 0, fmt.Errorf("copy to staging table: %w", err)
	}
	inserted, err := applyStaged(ctx, tx)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit (outcome unknown, will retry): %w", err)
	}
	return inserted, nil
}

// applyStaged inserts the staged batch and its deltas, first assuming all
// events are new, and, if some are already in Postgres, again skipping
// those. It returns the number of rows inserted.
func applyStaged(ctx context.Context, tx pgx.Tx) (int64, error) {
	if _, err := tx.Exec(ctx, savepointSQL); err != nil {
		return 0, fmt.Errorf("savepoint: %w", err)
	}
	var inserted, periods int64
	err := tx.QueryRow(ctx, applyNewSQL).Scan(&inserted, &periods)
	if err == nil {
		return inserted, nil
	}
	if !isDuplicateEvent(err) {
		return 0, fmt.Errorf("insert usage: %w", err)
	}
	if _, err := tx.Exec(ctx, rollbackSQL); err != nil {
		return 0, fmt.Errorf("rollback to savepoint: %w", err)
	}
	if err := tx.QueryRow(ctx, applyReplaySQL).Scan(&inserted, &periods); err != nil {
		return 0, fmt.Errorf("insert usage (replay): %w", err)
	}
	return inserted, nil
}

// isDuplicateEvent reports a unique violation of eco_api_usage's event id,
// and no other: a unique index the API team might add is not ours to skip.
func isDuplicateEvent(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == uniqueViolation &&
		pgErr.ConstraintName == "eco_api_usage_pkey"
}

// uniqueViolation is SQLSTATE unique_violation.
const uniqueViolation = "23505"

// stageRows feeds events to COPY, one reused row of values at a time (pgx
// encodes each row before asking for the next).
type stageRows struct {
	events []meter.Event
	i      int
	row    [12]any
}

func newStageRows(events []meter.Event) *stageRows {
	return &stageRows{events: events, i: -1}
}

func (r *stageRows) Next() bool {
	r.i++
	return r.i < len(r.events)
}

func (r *stageRows) Values() ([]any, error) {
	ev := &r.events[r.i]
	r.row = [12]any{
		pgText(ev.ID()), pgText(ev.AccountID), pgText(ev.KeyID), pgText(ev.Endpoint),
		pgText(ev.Method), int32(ev.Status), ev.LatencyMicros, decisionText(ev.Decision),
		ev.Overage, ev.PeriodStart, ev.Time, ev.Calls(),
	}
	return r.row[:], nil
}

func (r *stageRows) Err() error { return nil }

// decisionText mirrors meter.Usage.AddEvent, which counts every event that
// is not Denied as allowed; it also keeps a future Decision value from
// failing the column's CHECK and stalling the export.
func decisionText(d meter.Decision) string {
	if d == meter.Denied {
		return "denied"
	}
	return "allowed"
}

// pgText makes s storable as Postgres text, which rejects NUL bytes and
// invalid UTF-8. One such event would otherwise fail its batch on every
// retry and stall the export for good; a replacement character is the
// smaller harm.
func pgText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
