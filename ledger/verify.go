package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Kinds of Problem a verification can report.
const (
	ProblemSeqGap         = "seq_gap"               // events missing between two sequences
	ProblemLastSeq        = "last_seq"              // meta last_seq is past the newest event
	ProblemCounter        = "counter_mismatch"      // a period counter differs from its events
	ProblemDaily          = "daily_mismatch"        // an account's daily row differs from its events
	ProblemEndpointSum    = "endpoint_sum_mismatch" // per-endpoint rows do not add up to the daily row
	ProblemDailyTotal     = "daily_total_mismatch"  // daily_total is not the sum of the accounts' rows
	ProblemMissingAccount = "missing_account"       // a key, event or usage row names no account
	ProblemUndecodable    = "bad_record"            // a record that cannot be decoded
)

const (
	// maxReportedProblems bounds the report; MoreProblems counts the rest.
	maxReportedProblems = 1000
	// verifyAttempts: a run that Prune overtakes starts again, this often.
	verifyAttempts = 3
)

// verifyChunk bounds the records one read transaction of Verify looks at,
// so the writer is never held behind a long read. Tests lower it.
var verifyChunk = 10000

// errPrunedUnderVerify: Prune removed events Verify had not read yet; the
// run starts again from the new first event.
var errPrunedUnderVerify = errors.New("ledger pruned during verify")

// Problem is one inconsistency Verify found.
type Problem struct {
	Kind    string `json:"kind"`
	Account string `json:"account,omitempty"`
	// At names the record: a period start, a day, or a sequence range.
	At      string `json:"at,omitempty"`
	Message string `json:"message"`
}

// VerifyCount says how many records were compared with the events they
// summarise, and how many could not be because their events were pruned.
type VerifyCount struct {
	Checked   int `json:"checked"`
	Unchecked int `json:"unchecked"`
}

// VerifyReport is the outcome of Verify. It is meant to be served as JSON.
type VerifyReport struct {
	OK          bool      `json:"ok"`
	StartedAt   time.Time `json:"started_at"`
	TookSeconds float64   `json:"took_seconds"`
	// FirstSeq and LastSeq bound the events held; Events counts them.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Events   int64  `json:"events"`
	// Pruned: older events were pruned. Only periods and days that start
	// at or after CheckedFrom are compared with events then; older ones
	// are summarised history that no event can confirm any more.
	Pruned      bool        `json:"pruned"`
	CheckedFrom *time.Time  `json:"checked_from,omitempty"`
	Accounts    int         `json:"accounts"`
	Keys        int         `json:"keys"`
	Counters    VerifyCount `json:"counters"`
	Days        VerifyCount `json:"days"`
	// Busy counts cross-record comparisons skipped because calls of that
	// day were committed while Verify read it (only on a live ledger).
	Busy     int       `json:"busy_skipped"`
	Problems []Problem `json:"problems"`
	// LateCalls lists finalized periods holding overage calls committed
	// after finalization and not billed yet (the next run bills them).
	LateCalls    []LatePeriod `json:"late_calls,omitempty"`
	MoreProblems int          `json:"more_problems,omitempty"`
}

func (r *VerifyReport) add(p Problem) {
	if len(r.Problems) >= maxReportedProblems {
		r.MoreProblems++
		return
	}
	r.Problems = append(r.Problems, p)
}

// Verify checks that the ledger agrees with itself: sequences run without
// gaps from the first event held to the last, meta last_seq is the last
// event, every period counter and account daily row equals the events it
// summarises (where none of them was pruned), per-endpoint rows add up to
// their account's daily row, daily_total is the sum of the accounts' daily
// rows, and every key, event and usage row names an existing account.
//
// It reads in short transactions of a bounded size, so it can run on a
// live ledger without stalling the writer. Records are compared with the
// events committed up to the transaction that reads them, so calls
// committed meanwhile cause no false alarm. A failing check is a Problem in
// the report, not an error; errors are I/O failures and ctx.
func (l *Ledger) Verify(ctx context.Context) (VerifyReport, error) {
	start := time.Now()
	if l.cpReq != nil { // a live ledger: compare every event so far
		if err := l.Checkpoint(ctx); err != nil {
			return VerifyReport{}, fmt.Errorf("verify: %w", err)
		}
	}
	var v *verifier
	var err error
	for range verifyAttempts {
		v = newVerifier()
		if err = v.run(ctx, l); !errors.Is(err, errPrunedUnderVerify) {
			break
		}
	}
	if err != nil {
		return VerifyReport{}, fmt.Errorf("verify: %w", err)
	}
	rep := v.rep
	rep.StartedAt, rep.TookSeconds = start.UTC(), time.Since(start).Seconds()
	rep.OK = len(rep.Problems) == 0
	if rep.Problems == nil {
		rep.Problems = []Problem{}
	}
	return rep, nil
}

// VerifyJSON runs Verify and returns the report as a JSON-ready value (the
// admin API's view of the ledger).
func (l *Ledger) VerifyJSON(ctx context.Context) (any, error) {
	return l.Verify(ctx)
}

// VerifyFile verifies the ledger file at path without a writer: offline,
// from `meterd verify`. The file is opened read-only and never changed; a
// file that a running meterd holds fails with ErrInUse (ask that meterd's
// GET /api/admin/verify instead).
func VerifyFile(ctx context.Context, path string) (VerifyReport, error) {
	db, err := openReadOnly(path)
	if err != nil {
		return VerifyReport{}, err
	}
	defer db.Close()
	return (&Ledger{db: db, path: path}).Verify(ctx)
}

// openReadOnly opens an existing meterd ledger without writing to it.
func openReadOnly(path string) (*bolt.DB, error) {
	if err := precheck(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %v", path, ErrCorrupt, err)
	}
	if err := db.View(requireLedger); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// requireLedger accepts only a meterd ledger holding the buckets Verify
// reads: unlike a fresh Open, an empty bbolt file is not one.
func requireLedger(tx *bolt.Tx) error {
	if tx.Bucket(bucketMeta) == nil {
		return fmt.Errorf("%w: no meterd metadata", ErrCorrupt)
	}
	for _, name := range [][]byte{bucketEvents, bucketUsage, bucketDailyTotal, bucketAccounts, bucketKeys} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
		}
	}
	return checkOwnership(tx)
}

// verifier holds one Verify run's state. Tallies are rebuilt from events;
// stored records are compared with them as the scan meets them.
type verifier struct {
	rep        VerifyReport
	started    bool   // the first event (or its absence) has been seen
	next       uint64 // the sequence the event scan expects next
	checkAll   bool   // nothing was ever pruned
	horizon    time.Time
	lastSeqBad bool // the last_seq problem is reported (once)

	counters map[counterK]*counterTally
	days     map[acctK]*usageTally
	// dayTouch is the highest sequence of an event on each day: a record
	// of that day read at a snapshot below it may have changed since.
	dayTouch map[uint32]uint64
	accounts map[string]bool // existence, cached: accounts are never deleted

	acct acctScan
	// dayTotal sums the accounts' daily rows the usage scan met; it began
	// at snapshot usageStart, so a day touched since cannot be compared.
	dayTotal   map[uint32]*meter.Usage
	usageStart uint64

	// Stored counters and aggregates cover the events up to the
	// checkpoint (checkpoint.go); later ones wait in pending until a
	// transaction's checkpoint covers them. snap is the checkpoint of the
	// latest transaction: the point the rows it read summarise.
	pending []meter.Event
	snap    uint64
}

// counterK and acctK name the counters and daily rows Verify tallies.
type counterK struct {
	account string
	period  int64
}

type acctK struct {
	account string
	day     uint32
}

type counterTally struct {
	c       meter.Counter
	checked bool
}

type usageTally struct {
	u       meter.Usage
	checked bool
}

func newVerifier() *verifier {
	return &verifier{counters: map[counterK]*counterTally{},
		days: map[acctK]*usageTally{}, dayTouch: map[uint32]uint64{}, accounts: map[string]bool{},
		dayTotal: map[uint32]*meter.Usage{}}
}

func (v *verifier) run(ctx context.Context, l *Ledger) error {
	for _, step := range []func(context.Context, *Ledger) error{
		v.scanEvents, v.scanUsage, v.scanDailyTotal, v.checkLeftovers, v.scanAccounts, v.scanKeys, v.scanLateCalls,
	} {
		if err := step(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// scanEvents tallies every event held, one chunk per transaction.
func (v *verifier) scanEvents(ctx context.Context, l *Ledger) error {
	for done := false; !done; {
		err := l.view(ctx, func(tx *bolt.Tx) error {
			var err error
			done, err = v.readEvents(tx, verifyChunk)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// catchUp tallies the events committed since the last read, inside the
// transaction about to compare records, and returns its snapshot: the
// checkpoint its records summarise, which covers exactly the events
// tallied.
func (v *verifier) catchUp(tx *bolt.Tx) (uint64, error) {
	if _, err := v.readEvents(tx, -1); err != nil {
		return 0, err
	}
	return v.snap, nil
}

// settle tallies the pending events that tx's checkpoint covers.
func (v *verifier) settle(tx *bolt.Tx) {
	v.snap = checkpointSeq(tx)
	n := 0
	for n < len(v.pending) && v.pending[n].Seq <= v.snap {
		v.tally(&v.pending[n])
		n++
	}
	v.pending = v.pending[n:]
}

// readEvents tallies up to limit events (all if limit < 0) from v.next on
// and reports whether it reached the last one.
func (v *verifier) readEvents(tx *bolt.Tx, limit int) (bool, error) {
	v.settle(tx)
	c := tx.Bucket(bucketEvents).Cursor()
	k, val := c.Seek(seqKey(v.next))
	if !v.started {
		v.start(tx, k, val)
	}
	for n := 0; k != nil; k, val = c.Next() {
		if limit >= 0 && n == limit {
			return false, nil
		}
		n++
		seq := getUint64(k)
		if seq != v.next {
			if first, _ := c.First(); bytes.Equal(first, k) {
				return false, errPrunedUnderVerify
			}
			c.Seek(k)
			v.rep.add(Problem{Kind: ProblemSeqGap, At: fmt.Sprintf("%d..%d", v.next, seq-1),
				Message: fmt.Sprintf("%d events missing between sequences %d and %d", seq-v.next, v.next-1, seq)})
		}
		ev, err := decodeEvent(seq, val)
		if err != nil {
			v.rep.add(Problem{Kind: ProblemUndecodable, At: fmt.Sprint(seq), Message: "event: " + err.Error()})
		} else {
			v.requireAccount(tx, ev.AccountID, "event "+fmt.Sprint(seq))
			if seq <= v.snap {
				v.tally(&ev)
			} else {
				v.pending = append(v.pending, ev)
			}
		}
		v.next, v.rep.LastSeq = seq+1, seq
		v.rep.Events++
	}
	v.checkLastSeq(tx)
	return true, nil
}

// start sets where checks begin: if no event was ever pruned (the first
// held is sequence 1), everything is checked; otherwise only periods and
// days from the first held event's day on, because pruned events all lie
// before it.
func (v *verifier) start(tx *bolt.Tx, k, val []byte) {
	v.started = true
	if k == nil {
		last := getUint64(tx.Bucket(bucketMeta).Get([]byte("last_seq")))
		v.next, v.checkAll = last+1, last == 0
		v.horizon = time.Unix(1<<62, 0) // everything pruned: nothing to compare
		v.rep.Pruned = !v.checkAll
		return
	}
	first := getUint64(k)
	v.next, v.rep.FirstSeq = first, first
	if first == 1 {
		v.checkAll = true
		return
	}
	v.rep.Pruned = true
	if ev, err := decodeEvent(first, val); err == nil {
		v.horizon = meter.DayOf(ev.Time)
		v.rep.CheckedFrom = &v.horizon
	} else {
		v.horizon = time.Unix(1<<62, 0)
	}
}

// checkLastSeq: meta last_seq is written by checkpoints, so it may trail
// the last event but never pass it.
func (v *verifier) checkLastSeq(tx *bolt.Tx) {
	meta := getUint64(tx.Bucket(bucketMeta).Get(metaLastSeq))
	if v.rep.Events == 0 || meta <= v.rep.LastSeq || v.lastSeqBad {
		return
	}
	v.lastSeqBad = true
	v.rep.add(Problem{Kind: ProblemLastSeq, At: fmt.Sprint(meta),
		Message: fmt.Sprintf("meta last_seq is %d, past the last event %d", meta, v.rep.LastSeq)})
}

func (v *verifier) checkable(t time.Time) bool { return v.checkAll || !t.Before(v.horizon) }

// tally adds one event to the expected counter and daily row.
func (v *verifier) tally(ev *meter.Event) {
	day := dayNumber(ev.Time)
	v.dayTouch[day] = ev.Seq
	if v.checkable(ev.PeriodStart) {
		k := counterK{ev.AccountID, ev.PeriodStart.Unix()}
		t := v.counters[k]
		if t == nil {
			t = &counterTally{c: meter.Counter{AccountID: ev.AccountID, PeriodStart: ev.PeriodStart}}
			v.counters[k] = t
		}
		t.c.Count(ev)
	}
	if v.checkable(dayTime(day)) {
		k := acctK{ev.AccountID, day}
		t := v.days[k]
		if t == nil {
			t = &usageTally{}
			v.days[k] = t
		}
		t.u.AddEvent(ev)
	}
}

// requireAccount reports a record naming an account that does not exist.
func (v *verifier) requireAccount(tx *bolt.Tx, id, what string) {
	ok, seen := v.accounts[id]
	if seen {
		return
	}
	ok = tx.Bucket(bucketAccounts).Get([]byte(id)) != nil
	v.accounts[id] = ok
	if !ok {
		v.rep.add(Problem{Kind: ProblemMissingAccount, Account: id, Message: what + " names an account that does not exist"})
	}
}

func usageString(u meter.Usage) string {
	b, _ := json.Marshal(u)
	return string(b)
}
