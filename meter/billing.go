package meter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Billing errors.
var (
	// ErrBillingBusy: another billing run holds the lease; retry later.
	ErrBillingBusy = errors.New("another billing run is in progress")
	// ErrBillingConflict: the period's billing state changed since the run
	// read it (an intent is open, or billed totals moved), so the charge
	// the run computed is stale and was not written.
	ErrBillingConflict = errors.New("billing state changed during the run")
	// ErrPeriodFinal: the period was finalized; nothing more is billed
	// into it.
	ErrPeriodFinal = errors.New("billing period is finalized")
	// ErrIntentNotFound: no billing intent has the given reference.
	ErrIntentNotFound = errors.New("billing intent not found")
	// ErrBillingDisabled: the operation needs Stripe, and no secret key is
	// configured (previews work without one).
	ErrBillingDisabled = errors.New("billing is disabled: no Stripe secret key is configured")
)

// IntentStatus is where a billing intent stands.
type IntentStatus string

const (
	// IntentPending: written to the ledger, not sent yet.
	IntentPending IntentStatus = "pending"
	// IntentSent: sent at least once; Stripe's answer is unknown (lost,
	// timed out, 5xx). It is retried with the same key and amount.
	IntentSent IntentStatus = "sent"
	// IntentFailed: Stripe refused it for good; nothing was charged, so
	// its amount is billed again by a later intent.
	IntentFailed IntentStatus = "failed"
	// IntentDone: Stripe created the invoice item (StripeID).
	IntentDone IntentStatus = "done"
)

// Open reports whether the intent may still become a charge: it must be
// resolved (retried) before anything else is billed for its period.
func (s IntentStatus) Open() bool { return s == IntentPending || s == IntentSent }

// BillingIntent is one overage charge, written to the ledger before it is
// sent so a crash or an error at any point leads to a retry of the same
// charge, never to a second one.
type BillingIntent struct {
	AccountID   string    `json:"account_id"`
	CustomerID  string    `json:"stripe_customer_id"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
	// Seq numbers the intents of one account and period from 1.
	Seq         uint32 `json:"seq"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	// Calls is the overage calls this charge adds; CallsCovered the
	// period's cumulative overage calls billed once it is done.
	Calls        int64 `json:"calls"`
	CallsCovered int64 `json:"calls_covered"`
	// IdempotencyKey is derived from account, period and Seq (IntentKey),
	// and sent with every attempt.
	IdempotencyKey string       `json:"idempotency_key"`
	Status         IntentStatus `json:"status"`
	StripeID       string       `json:"stripe_id,omitempty"`
	Attempts       int          `json:"attempts"`
	CreatedAt      time.Time    `json:"created_at"`
	UpdatedAt      time.Time    `json:"updated_at"`
	// SentAt is the first attempt; Stripe forgets idempotency keys about
	// a day after it.
	SentAt    time.Time `json:"sent_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Late marks a charge for calls committed into the period after it was
	// finalized; it is billed by the next run and says so on the invoice.
	Late bool `json:"late,omitempty"`
	// Adopted marks an intent recorded from an item found in Stripe by
	// reconciliation (after a restore or a lost key) rather than sent.
	Adopted bool `json:"adopted,omitempty"`
}

// IntentKey is the idempotency key of intent seq of an account's period:
// deterministic, so every retry of the intent carries the same one.
func IntentKey(account string, periodStart time.Time, seq uint32) string {
	return "meterd-overage-" + account + "-" + periodStart.UTC().Format("20060102T150405Z") +
		"-" + strconv.FormatUint(uint64(seq), 10)
}

// BillingState is what has been billed for one account and period.
type BillingState struct {
	AccountID   string    `json:"account_id"`
	PeriodStart time.Time `json:"period_start"`
	// BilledCents and BilledCalls sum the done intents.
	BilledCents int64 `json:"billed_cents"`
	BilledCalls int64 `json:"billed_calls"`
	// LastSeq is the highest intent Seq used; OpenSeq the open intent's
	// (0 if none).
	LastSeq uint32 `json:"last_seq"`
	OpenSeq uint32 `json:"open_seq,omitempty"`
	// Final marks a closed period whose remainder was billed: later calls
	// recorded into it are never billed.
	Final       bool      `json:"final,omitempty"`
	FinalizedAt time.Time `json:"finalized_at,omitzero"`
	// LateCalls counts overage calls that reached the period after it was
	// finalized and were billed by late charges.
	LateCalls int64 `json:"late_calls,omitempty"`
	// Epoch is the ledger's restore epoch when the period was last
	// reconciled with Stripe (see NeedsStripeCheck).
	Epoch uint64 `json:"epoch,omitempty"`
}

// BillingLease lets one billing run at a time charge.
type BillingLease struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// IntentUpdate records the outcome of an attempt to send an intent.
type IntentUpdate struct {
	AccountID   string
	PeriodStart time.Time
	Seq         uint32
	// Status is IntentSent (an attempt is starting, or ended without a
	// definite answer), IntentDone (with StripeID) or IntentFailed.
	Status   IntentStatus
	StripeID string
	Error    string
	At       time.Time
}

// BillingStore keeps billing intents, per-period billing state and the
// billing lease. The ledger implements it; every change is one atomic
// write.
type BillingStore interface {
	// Counters returns every period counter of an account, oldest first.
	Counters(ctx context.Context, account string) ([]Counter, error)
	// AcquireBillingLease takes the lease for owner until now+ttl if it is
	// free, expired or already owner's (a renewal); otherwise it returns
	// the holder's lease and ErrBillingBusy.
	AcquireBillingLease(ctx context.Context, owner string, now time.Time, ttl time.Duration) (BillingLease, error)
	// ReleaseBillingLease gives the lease up if owner holds it.
	ReleaseBillingLease(ctx context.Context, owner string) error
	// BillingState returns an account period's state (zero if none).
	BillingState(ctx context.Context, account string, periodStart time.Time) (BillingState, error)
	// CreateBillingIntent stores in as the period's next intent, with Seq,
	// IdempotencyKey, status pending and times set, and returns it. It
	// fails with ErrBillingBusy unless owner holds the lease, with
	// ErrPeriodFinal for a finalized period, and with ErrBillingConflict
	// if an intent is open or the billed cents differ from billedCents.
	CreateBillingIntent(ctx context.Context, owner string, in BillingIntent, billedCents int64) (BillingIntent, error)
	// UpdateBillingIntent applies an attempt's outcome. Done and failed are
	// final: updating a done or failed intent changes nothing and returns
	// it as it is. Done adds the amount to the period's billed totals.
	UpdateBillingIntent(ctx context.Context, u IntentUpdate) (BillingIntent, error)
	// OpenBillingIntents returns the pending and sent intents.
	OpenBillingIntents(ctx context.Context) ([]BillingIntent, error)
	// BillingIntents returns the intents of periods starting in
	// [from, to), by period, account and Seq.
	BillingIntents(ctx context.Context, from, to time.Time) ([]BillingIntent, error)
	// FinalizeBillingPeriod marks a period final. It fails with
	// ErrBillingBusy unless owner holds the lease and with
	// ErrBillingConflict while an intent is open.
	FinalizeBillingPeriod(ctx context.Context, owner, account string, periodStart, at time.Time) error
	// PeriodIntents returns one account period's intents by Seq.
	PeriodIntents(ctx context.Context, account string, periodStart time.Time) ([]BillingIntent, error)
	// AdoptStripeCharges records items found in Stripe (see Reconcile) as
	// done intents of the period and marks it reconciled in epoch. It
	// fails with ErrBillingBusy unless owner holds the lease.
	AdoptStripeCharges(ctx context.Context, owner, account string, periodStart time.Time, adopt []BillingIntent, epoch uint64) (BillingState, error)
	// Epoch is the store's restore epoch: 0 if never restored, one more
	// per restore (see NeedsStripeCheck).
	Epoch() uint64
	// LastBillingRun is the slot of the last scheduled run that completed
	// (zero if none); RecordBillingRun moves it forward.
	LastBillingRun(ctx context.Context) (time.Time, error)
	RecordBillingRun(ctx context.Context, slot time.Time) error
}

// BillingOptions narrow a billing run.
type BillingOptions struct {
	// DryRun computes what would be charged without writing or sending
	// anything.
	DryRun bool
	// Period ("YYYY-MM") limits the run to periods starting in that UTC
	// month, however long ago it closed; empty means every open or
	// recently closed period.
	Period string
}

// ParseBillingMonth parses "YYYY-MM" into the first instant of that UTC
// month.
func ParseBillingMonth(s string) (time.Time, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return time.Time{}, Invalid("period", "must be a month as YYYY-MM")
	}
	return t.UTC(), nil
}

// BillingLine is one account period in a billing report.
type BillingLine struct {
	AccountID  string `json:"account_id"`
	CustomerID string `json:"stripe_customer_id,omitempty"`
	Plan       string `json:"plan"`
	// Status: charged, would_charge, nothing_due, pending (an intent's
	// outcome is still unknown), failed, or skipped (see Reason).
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	PeriodStart time.Time `json:"period_start,omitzero"`
	PeriodEnd   time.Time `json:"period_end,omitzero"`
	Closed      bool      `json:"closed"`
	// OverageCalls is the period's overage so far; BillableCents its cost,
	// floor(calls × micros / 10,000); BilledCents what was billed before
	// this line; ChargeCents what this line charged (or would charge).
	OverageCalls  int64 `json:"overage_calls"`
	BillableCents int64 `json:"billable_cents"`
	BilledCents   int64 `json:"billed_cents"`
	ChargeCents   int64 `json:"charge_cents"`
	// ProjectedCents is the period's projected total at the current rate
	// (open periods; the billable total for closed ones).
	ProjectedCents int64 `json:"projected_cents"`
	// DueCents is what is due now (billable minus billed and open): what
	// a charge bills, or what an account without a Stripe customer
	// (NoCustomer) would owe.
	DueCents   int64 `json:"due_cents"`
	NoCustomer bool  `json:"no_customer,omitempty"`
	// Late marks a charge for calls committed into a finalized period.
	Late      bool           `json:"late,omitempty"`
	Finalized bool           `json:"finalized,omitempty"`
	Intent    *BillingIntent `json:"intent,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// BillingReport is the outcome of a billing run or preview.
type BillingReport struct {
	DryRun     bool          `json:"dry_run"`
	Period     string        `json:"period,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at"`
	Lines      []BillingLine `json:"accounts"`
	// ChargedCents sums the invoice items Stripe accepted in this run (or
	// that a dry run would send).
	ChargedCents int64 `json:"charged_cents"`
	Charges      int   `json:"charges"`
	// UnbillableCents sums what accounts without a Stripe customer owe:
	// money at stake that no run can charge until one is set.
	UnbillableCents int64 `json:"unbillable_cents"`
	// Errors counts lines that failed or whose outcome is unknown.
	Errors int `json:"errors"`
}

// OK reports whether every charge of the run went through.
func (r *BillingReport) OK() bool { return r.Errors == 0 }

// String summarises the report in one line.
func (r *BillingReport) String() string {
	verb := "charged"
	if r.DryRun {
		verb = "would charge"
	}
	s := fmt.Sprintf("%s %d cents in %d invoice items; %d errors", verb, r.ChargedCents, r.Charges, r.Errors)
	if r.UnbillableCents > 0 {
		s += fmt.Sprintf("; %d cents due from accounts without a Stripe customer", r.UnbillableCents)
	}
	return s
}
