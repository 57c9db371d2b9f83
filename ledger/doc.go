// Package ledger is meterd's crash-safe store: one bbolt file holding
// accounts, key hashes, every metered event, the per-period counters, the
// daily aggregates, exporter cursors and billing intents.
//
// One writer goroutine owns every read-write transaction and commits in
// groups: whatever has queued, up to a bound, goes into one fsynced
// transaction of events and idempotency records. Period counters and daily
// aggregates follow in memory and are written by checkpoints that record
// the event sequence they cover; Open replays the events after it, so
// after any crash the counters equal the events. A failed commit of
// answered writes is retried, never dropped. Readers use short read-only
// transactions from any goroutine.
//
// ledger is the only package that imports bbolt. It must never hold a byte
// slice from a transaction after the transaction ends, never open the file
// with NoSync, and never overwrite a file it does not recognise.
package ledger
