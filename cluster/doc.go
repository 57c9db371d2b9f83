// Package cluster owns the shared state of a meterd cluster in Postgres:
// the node registry, quota leases for hard-limited plans, and the
// revisioned accounts and keys every node applies to its own ledger.
//
// It implements meter.Allowance and meter.SharedState. Each node keeps
// deciding locally from its bbolt ledger; this package only moves
// allowance and admin changes between the nodes and Postgres. It must
// never let the cluster admit more hard-limited calls than a plan's limit:
// every grant is one conditional upsert that cannot pass the limit, and
// allowance a node may have spent stays counted until the node itself, or
// an operator's release against its exported calls, says otherwise. It
// relies on no advisory lock and no LISTEN/NOTIFY for correctness.
package cluster
