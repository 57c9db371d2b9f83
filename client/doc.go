// Package client talks to a running meterd over HTTP: metering calls
// (track, forward-auth, batch events), reading usage, and the admin API
// (accounts and keys). The meterd CLI and the Go middleware's remote mode
// use it.
//
// It owns retries: a request is retried on a 503 (meterd recorded
// nothing) and, when it is safe to send twice, on a transport error.
// Track and Events give every call an idempotency id before the first
// attempt and keep it across retries, so a retry never counts a call
// twice. It never imports the server's packages: it speaks JSON only.
package client
