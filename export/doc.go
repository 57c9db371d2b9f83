// Package export groups the adapters that move ledger data out of meterd:
// export/postgres writes every call record and daily aggregates to the
// API's Postgres exactly once, and export/stripe bills Pro overage to
// Stripe as idempotent invoice items. Both read the ledger through the
// meter interfaces (EventLog, BillingStore) and never change metering.
package export
