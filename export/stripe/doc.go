// Package stripe bills overage to Stripe as invoice items, exactly once,
// from the ledger's period counters: Stripe attaches the items to the
// customer's next invoice.
//
// A charge is the period's cumulative billable cents (each overage call at
// the price it was made at) minus what is already billed. It is written to
// the ledger as an intent (with a deterministic idempotency key) before
// Stripe is called, sent with that key, then marked done. Whatever fails in
// between, the same intent is retried with the same key and amount. Where
// the key may be unsafe (Stripe forgot it, the ledger was restored, Stripe
// answered idempotency_error) the period is first reconciled with the
// customer's invoice items by their metadata, so only the difference is
// charged. A short ledger lease, renewed while a run lives, lets one run at
// a time charge. What is due, when a period closes and how an intent moves
// are meter's rules; this package only calls Stripe and the store.
//
// This is the only package that imports stripe-go. It must never mint a new
// key for an intent that may have reached Stripe, never let stripe-go retry
// on its own (its retries would not be recorded), and never bill a call
// twice: calls committed into a finalized period are billed once, by a late
// charge.
package stripe
