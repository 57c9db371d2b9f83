// Package webhook delivers the ledger's notices (threshold crossings,
// billing events, plan changes) to HTTP endpoints, signed per the Standard
// Webhooks specification, at least once, with the same webhook-id on every
// attempt, in order per account.
//
// It owns endpoint administration, signing, retries with backoff and
// jitter, the dead letter and replay. It never touches the hot path: the
// meter stores notices in the ledger's outbox with the call that caused
// them, and this package reads the outbox in the background, so a slow
// or dead receiver only grows the outbox. It must never log a secret or a
// whole response body.
package webhook
