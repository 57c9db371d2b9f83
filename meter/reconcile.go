package meter

import "time"

// ReconcileLine compares, for one account period, what the ledger says
// was billed, what Stripe holds, and what is due.
type ReconcileLine struct {
	AccountID   string    `json:"account_id"`
	CustomerID  string    `json:"stripe_customer_id,omitempty"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
	// BillableCents is the period's overage at each call's own rate;
	// LedgerBilledCents the ledger's done intents; StripeBilledCents the
	// invoice items Stripe holds for the period (by their metadata).
	BillableCents     int64 `json:"billable_cents"`
	LedgerBilledCents int64 `json:"ledger_billed_cents"`
	StripeBilledCents int64 `json:"stripe_billed_cents"`
	// DueCents is what is still to bill: billable minus what Stripe holds
	// (negative if Stripe holds more than the calls cost).
	DueCents int64 `json:"due_cents"`
	// DifferenceCents is Stripe minus ledger; Flagged marks a non-zero
	// difference or an overbilled period.
	DifferenceCents int64  `json:"difference_cents"`
	Flagged         bool   `json:"flagged"`
	Note            string `json:"note,omitempty"`
}

// NewReconcileLine fills in the derived figures and the flag.
func NewReconcileLine(l ReconcileLine) ReconcileLine {
	l.DueCents = l.BillableCents - l.StripeBilledCents
	l.DifferenceCents = l.StripeBilledCents - l.LedgerBilledCents
	switch {
	case l.DifferenceCents > 0:
		l.Flagged, l.Note = true, "Stripe holds charges the ledger does not count (a restore?); the next run records them"
	case l.DifferenceCents < 0:
		l.Flagged, l.Note = true, "the ledger counts charges Stripe does not hold (deleted items?)"
	case l.DueCents < 0:
		l.Flagged, l.Note = true, "billed more than the calls cost"
	}
	return l
}

// ReconcileReport is the reconciliation of one month's periods.
type ReconcileReport struct {
	Period      string          `json:"period"`
	GeneratedAt time.Time       `json:"generated_at"`
	Lines       []ReconcileLine `json:"accounts"`
	// Differences counts flagged lines.
	Differences int `json:"differences"`
}
