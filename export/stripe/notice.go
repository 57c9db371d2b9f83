package stripe

import (
	"context"
	"fmt"
	"strconv"

	"github.com/meterd/meterd/meter"
)

// notify emits a billing notice about intent it. It is called before the
// intent's outcome is written: a crash in between retries the intent,
// which emits the same notice (same id, derived from the intent's key)
// again, and the outbox keeps one. An error ends the run like a crash.
func (r *run) notify(ctx context.Context, t meter.NoticeType, it meter.BillingIntent, detail map[string]string) error {
	if r.s.cfg.Notices == nil {
		return nil
	}
	n := meter.BillingNotice(t, it.AccountID, it.PeriodStart, it.IdempotencyKey, it.AmountCents, detail)
	if err := r.s.cfg.Notices.Emit(context.WithoutCancel(ctx), n); err != nil {
		return fmt.Errorf("billing notice: %w", err)
	}
	return nil
}

// notifyClosed emits billing.period_closed for a period about to be
// finalized, with its final figures.
func (r *run) notifyClosed(ctx context.Context, line *meter.BillingLine) error {
	if r.s.cfg.Notices == nil {
		return nil
	}
	n := meter.BillingNotice(meter.NoticePeriodClosed, line.AccountID, line.PeriodStart, "final",
		line.BillableCents, map[string]string{"period_end": line.PeriodEnd.Format("2006-01-02T15:04:05Z07:00"),
			"overage_calls": strconv.FormatInt(line.OverageCalls, 10)})
	n.Plan, n.Overage = line.Plan, line.OverageCalls
	if err := r.s.cfg.Notices.Emit(ctx, n); err != nil {
		return fmt.Errorf("billing notice: %w", err)
	}
	return nil
}
