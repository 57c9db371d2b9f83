package meter

import (
	"strconv"
	"time"
)

// Decision is the outcome of metering one call.
type Decision uint8

const (
	// Allowed calls count as usage (and as overage past a soft limit).
	Allowed Decision = 1
	// Denied calls were refused with 429; they are recorded but never count.
	Denied Decision = 2
)

func (d Decision) String() string {
	switch d {
	case Allowed:
		return "allowed"
	case Denied:
		return "denied"
	}
	return "unknown"
}

// Event is the durable record of one metered call, or of several denied
// calls coalesced into one record (see Calls).
type Event struct {
	// Seq is assigned by the ledger writer at commit: dense, increasing, and
	// in commit order, so a reader tailing "after Seq" never misses one.
	Seq uint64
	// Node identifies the meterd node that recorded the event; Node+Seq is
	// globally unique (see ID).
	Node string
	// Time is when the call was metered (UTC).
	Time time.Time
	// PeriodStart is the start of the account's billing period the call
	// belongs to; the ledger's period counter is keyed by it.
	PeriodStart time.Time
	AccountID   string
	KeyID       string
	// Endpoint is the route template (ids folded to {id}).
	Endpoint string
	Method   string
	// Status is the HTTP status the API answered (0 if unknown).
	Status int
	// LatencyMicros is the API's response time in microseconds (0 if unknown).
	LatencyMicros int64
	Decision      Decision
	// Overage marks an allowed call past a soft (overage-billed) limit.
	Overage bool
	// OverageMicros is an overage call's price in micro-dollars, at the
	// plan in force when it was made (0 for other calls). It is negative
	// for an overage call recorded before calls carried their price.
	OverageMicros int64
	// IdempotencyKey is the caller-supplied id, if any ("" when none).
	IdempotencyKey string
	// Plan is the account's plan when the call was decided. The ledger adds
	// the call to that plan's daily totals (the console's stacked history);
	// it is not part of the stored event record.
	Plan string
	// Notices are the crossings this call caused (notice.go), nil for
	// almost every call; the ledger stores them in its outbox in the same
	// transaction as the event. A pointer keeps Event comparable.
	Notices *NoticeList
	// Coalesced is the number of denied calls this one record stands for
	// when the ledger merged a group's denials of one account, key,
	// endpoint, method, status and day (ledger/coalesce.go); 0 for a
	// record of one call. See Calls.
	Coalesced int64
}

// Calls is the number of calls the event records: Coalesced for a
// coalesced denial, else 1. Every counting place goes through it
// (countCall), so N coalesced denials count exactly as N denials.
func (e *Event) Calls() int64 { return max(e.Coalesced, 1) }

// ID is the globally unique event id: node id, a dash, and the sequence.
func (e *Event) ID() string { return EventID(e.Node, e.Seq) }

// EventID formats a node id and sequence as an event id.
func EventID(node string, seq uint64) string {
	return node + "-" + strconv.FormatUint(seq, 10)
}

// IsError reports whether the call's status counts as a server error.
func (e *Event) IsError() bool { return e.Status >= 500 }

// IsClientError reports whether the call's status is a 4xx.
func (e *Event) IsClientError() bool { return e.Status >= 400 && e.Status < 500 }
