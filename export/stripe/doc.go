// Package stripe bills Pro overage to Stripe as invoice items, exactly once,
// from the ledger's period counters: Stripe attaches the items to the
// customer's next invoice.
//
// A charge is the period's cumulative billable cents minus what is already
// billed. It is written to the ledger as an intent (with a deterministic
// idempotency key) before Stripe is called, sent with that key, then marked
// done. Whatever fails in between, the same intent is retried with the same
// key and amount; once Stripe may have forgotten the key (about a day), the
// customer's invoice items are searched by the intent's metadata first. A
// ledger lease lets one run at a time charge.
//
// This is the only package that imports stripe-go. It must never mint a new
// key for an intent that may have reached Stripe, never let stripe-go retry
// on its own (its retries would not be recorded), and never bill into a
// finalized period.
package stripe
