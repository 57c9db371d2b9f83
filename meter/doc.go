// Package meter is meterd's domain: accounts, API keys, plans, billing
// periods, the metering decision (check and count), quota math and money
// math. It also declares the interfaces that the storage and export adapters
// implement.
//
// meter must never import bbolt, pgx, stripe-go or net/http handlers: it is
// pure domain logic plus the in-memory hot path, so it can be tested and
// benchmarked without any I/O.
package meter
