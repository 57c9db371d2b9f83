// Package postgres exports ledger events to the API's Postgres database:
// one row per ledger event in eco_api_usage (a call, or a coalesced denial
// whose calls column counts its denied calls), daily totals in eco_usage_daily and
// eco_usage_endpoint_daily, and per-period totals through
// increment_api_calls(). The schema comes from package migrations.
//
// The ledger is the source of truth and the queue; Postgres is only a
// target. Each batch of events after the exporter's ledger cursor is written
// in one Postgres transaction: COPY into a temporary staging table, INSERT
// ... SELECT into eco_api_usage, and aggregate deltas computed from the rows
// actually inserted (RETURNING). The cursor moves only after the commit. A
// crash between the commit and the cursor move, or a COMMIT whose outcome is
// unknown, therefore leads to the same batch being written again, which
// inserts nothing and adds nothing: every event reaches Postgres exactly
// once.
//
// The INSERT first runs without a conflict clause, inside a savepoint: a
// plain insert costs much less per row than ON CONFLICT's speculative
// insertion, and almost every batch is new. If an event is already there
// (a replay), the unique violation rolls back to the savepoint and the
// batch is inserted again with ON CONFLICT (event_id) DO NOTHING. Two
// batches are written at once by default (Config.Parallel), each in its own
// transaction; the cursor still moves in order.
//
// While Postgres is down or slow the exporter retries with capped,
// jittered exponential backoff; metering never waits for it, the events
// wait in the ledger, and the backlog is reported by Status and by the
// meterd_export_backlog_events and meterd_export_lag_seconds gauges.
//
// # Backlog bound
//
// Config.MaxBacklog (default 50,000,000 events) is the line past which a
// Postgres outage has become a disk problem. The exporter never drops,
// skips or samples events to stay under it: that would break exactly-once
// export and the billing built on it. Past the bound, metering goes on, the
// ledger keeps every unexported event (its pruning holds any event this
// exporter's cursor has not passed), Status reports OverBound and the
// exporter logs an error once. Alert on meterd_export_backlog_events
// against the bound, or on meterd_export_lag_seconds, and restore Postgres
// or add disk; the exporter then catches up at full batch speed.
//
// # Units
//
// eco_api_usage.response_time_ms is numeric(20,3), exact to the
// microsecond (meter.Event.LatencyMicros / 1000), NULL when no latency was
// reported; status_code is NULL when unknown. The daily tables keep latency
// as latency_sum_us and latency_count, in integer microseconds, like
// meter.Usage.
//
// postgres is the only package of meterd that imports pgx (besides the
// database/sql driver migrations hands to goose). It must never
// advance the cursor past an event that is not committed in Postgres, and
// never drop an event to shrink the backlog.
package postgres
