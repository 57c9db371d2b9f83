// Package ledger is meterd's crash-safe store: one bbolt file holding
// accounts, key hashes, every metered event, the per-period counters, the
// daily aggregates, exporter cursors and billing intents.
//
// One writer goroutine owns every read-write transaction and commits in
// groups: whatever has queued, up to a bound, goes into one fsynced
// transaction. An event, its period counter, its daily aggregates and its
// idempotency record change in the same transaction, so they can never
// disagree. Readers use short read-only transactions from any goroutine.
//
// ledger is the only package that imports bbolt. It must never hold a byte
// slice from a transaction after the transaction ends, never open the file
// with NoSync, and never overwrite a file it does not recognise.
package ledger
