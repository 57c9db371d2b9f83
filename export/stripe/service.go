package stripe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meterd/meterd/meter"
)

// Report is the outcome of a billing run or preview.
type Report = meter.BillingReport

// Service bills overage to Stripe. It is safe for concurrent use: runs
// exclude each other through the ledger's billing lease, so at most one
// charges at a time, in this process or any other on the same ledger.
type Service struct {
	cfg     Config
	client  *client // nil without a secret key: dry runs only
	metrics *metrics
	id      string
	runs    atomic.Uint64
	last    lastRun // the latest real run, for the console's health panel

	// afterStripeAcceptFn, if set, is called after Stripe accepted an
	// invoice item and before the ledger marks its intent done. An error
	// ends the run right there, as a crash would: nothing more is written
	// and the lease is not released (test hook).
	afterStripeAcceptFn func() error
}

// New returns a Service. Without Config.SecretKey it can preview and list
// but not charge.
func New(cfg Config) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, metrics: m, id: processID()}
	if cfg.Owner != "" {
		s.id = cfg.Owner + "@" + s.id
	}
	if cfg.SecretKey != "" {
		s.client = newClient(cfg)
	}
	return s, nil
}

// processID names this process in lease records: host, pid and a random
// suffix, so two services in one process are distinct owners too.
func processID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Run bills every open or recently closed period now: pending intents are
// retried first, then each account's unbilled overage is charged, and
// closed periods are finalized. It fails with meter.ErrBillingBusy while
// another run holds the lease. Per-charge failures do not fail the run:
// they are in the report (Errors) and retried by the next run.
func (s *Service) Run(ctx context.Context) (Report, error) {
	return s.Bill(ctx, meter.BillingOptions{})
}

// Preview reports what a run would charge now, and each open period's
// projected total at its current rate, without writing anything or
// calling Stripe.
func (s *Service) Preview(ctx context.Context) (Report, error) {
	return s.Bill(ctx, meter.BillingOptions{DryRun: true})
}

// RetryPending retries the open intents only (meant for start-up): it
// charges nothing new.
func (s *Service) RetryPending(ctx context.Context) (Report, error) {
	rep := Report{StartedAt: s.now()}
	err := s.execute(ctx, scope{retryOnly: true}, &rep)
	rep.FinishedAt = s.now()
	return rep, err
}

// Bill runs billing as opts say: a dry run or a real one, over every
// eligible period or the periods starting in one month.
func (s *Service) Bill(ctx context.Context, opts meter.BillingOptions) (Report, error) {
	rep := Report{DryRun: opts.DryRun, Period: opts.Period, StartedAt: s.now()}
	sc, err := newScope(opts.Period)
	if err != nil {
		return rep, err
	}
	if opts.DryRun {
		err = s.preview(ctx, sc, &rep)
	} else {
		err = s.execute(ctx, sc, &rep)
	}
	rep.FinishedAt = s.now()
	return rep, err
}

// Charges lists the intents of periods starting in month ("YYYY-MM"; empty
// means the current month) with their status and Stripe ids.
func (s *Service) Charges(ctx context.Context, month string) ([]meter.BillingIntent, error) {
	from := monthOf(s.now())
	if month != "" {
		var err error
		if from, err = meter.ParseBillingMonth(month); err != nil {
			return nil, err
		}
	}
	out, err := s.cfg.Store.BillingIntents(ctx, from, from.AddDate(0, 1, 0))
	if out == nil {
		out = []meter.BillingIntent{}
	}
	return out, err
}

func monthOf(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// scope is what a run covers.
type scope struct {
	// from and to bound the period starts of an explicit month.
	from, to  time.Time
	explicit  bool
	retryOnly bool
}

func newScope(month string) (scope, error) {
	if month == "" {
		return scope{}, nil
	}
	from, err := meter.ParseBillingMonth(month)
	if err != nil {
		return scope{}, err
	}
	return scope{from: from, to: from.AddDate(0, 1, 0), explicit: true}, nil
}

func (sc scope) includes(p meter.Period) bool {
	return !sc.explicit || (!p.Start.Before(sc.from) && p.Start.Before(sc.to))
}

// execute is a real run: lease, retries, new charges, finalization.
func (s *Service) execute(ctx context.Context, sc scope, rep *Report) error {
	if s.client == nil {
		return ErrNoSecretKey
	}
	r := &run{s: s, rep: rep, owner: s.id + "#" + strconv.FormatUint(s.runs.Add(1), 10)}
	if err := r.renew(ctx); err != nil {
		return err
	}
	stop := s.heartbeat(ctx, r.owner)
	err := r.all(ctx, sc)
	stop()
	if r.crashed {
		return err
	}
	if err == nil && !sc.explicit && !sc.retryOnly {
		err = s.cfg.Store.RecordBillingRun(context.WithoutCancel(ctx), rep.StartedAt)
	}
	if rerr := s.cfg.Store.ReleaseBillingLease(context.WithoutCancel(ctx), r.owner); rerr != nil && err == nil {
		err = rerr
	}
	s.observeRun(ctx, rep, err)
	s.last.record(*rep, err, s.now())
	return err
}

// heartbeat renews the lease every third of its TTL while the run lives,
// so a long run keeps it and a crashed one loses it within one TTL. The
// returned stop ends the renewals and waits for the last one.
func (s *Service) heartbeat(ctx context.Context, owner string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(s.cfg.LeaseTTL/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := s.cfg.Store.AcquireBillingLease(ctx, owner, s.now(), s.cfg.LeaseTTL); err != nil && ctx.Err() == nil {
					s.cfg.Logger.Warn("renewing the billing lease failed", "error", err)
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// RetryLoop retries the open intents now and then every RetryInterval
// until ctx ends (meant to run for the life of the process): a crash
// leaves intents open, and they are resolved without waiting for the
// next scheduled run. While another run holds the lease it tries again
// within a third of the lease TTL.
func (s *Service) RetryLoop(ctx context.Context) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = s.cfg.RetryInterval
		open, err := s.cfg.Store.OpenBillingIntents(ctx)
		if err != nil || len(open) == 0 {
			continue
		}
		_, err = s.RetryPending(ctx)
		switch {
		case errors.Is(err, meter.ErrBillingBusy):
			wait = min(max(s.cfg.LeaseTTL/3, 100*time.Millisecond), s.cfg.RetryInterval)
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.Warn("retrying open billing intents failed; retried again later", "error", err)
		}
	}
}

// preview is a dry run: no lease, no writes, no Stripe.
func (s *Service) preview(ctx context.Context, sc scope, rep *Report) error {
	r := &run{s: s, rep: rep, dry: true}
	return r.all(ctx, sc)
}

// observeRun updates the gauges after a real run and logs its summary.
func (s *Service) observeRun(ctx context.Context, rep *Report, err error) {
	if open, oerr := s.cfg.Store.OpenBillingIntents(context.WithoutCancel(ctx)); oerr == nil {
		s.metrics.pending.Set(float64(len(open)))
	}
	switch {
	case err != nil:
		s.cfg.Logger.Error("billing run failed", "error", err, "charged_cents", rep.ChargedCents)
	case !rep.OK():
		s.cfg.Logger.Warn("billing run finished with errors", "charges", rep.Charges,
			"charged_cents", rep.ChargedCents, "errors", rep.Errors)
	default:
		s.metrics.lastSuccess.Set(float64(s.now().UnixNano()) / 1e9)
		s.cfg.Logger.Info("billing run finished", "charges", rep.Charges, "charged_cents", rep.ChargedCents)
	}
}

// Reconcile reports, for every account period starting in month
// ("YYYY-MM"), what the ledger says was billed, what Stripe holds and
// what is due, and flags any difference. It writes nothing; it needs the
// secret key to list Stripe's items.
func (s *Service) Reconcile(ctx context.Context, month string) (meter.ReconcileReport, error) {
	rep := meter.ReconcileReport{Period: month, GeneratedAt: s.now(), Lines: []meter.ReconcileLine{}}
	if s.client == nil {
		return rep, ErrNoSecretKey
	}
	sc, err := newScope(month)
	if err != nil || !sc.explicit {
		return rep, meter.Invalid("period", "must be a month as YYYY-MM")
	}
	for _, q := range s.cfg.Accounts.Quotas() {
		if q.Account.StripeCustomerID == "" {
			continue
		}
		if err := s.reconcileAccount(ctx, q, sc, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func (s *Service) reconcileAccount(ctx context.Context, q meter.Quota, sc scope, rep *meter.ReconcileReport) error {
	counters, err := s.cfg.Store.Counters(ctx, q.Account.ID)
	if err != nil {
		return err
	}
	for _, c := range counters {
		p := meter.PeriodAt(q.Account.Anchor(), c.PeriodStart)
		if !sc.includes(p) {
			continue
		}
		st, err := s.cfg.Store.BillingState(ctx, q.Account.ID, p.Start)
		if err != nil {
			return err
		}
		items, err := s.client.listPeriod(ctx, q.Account.StripeCustomerID, q.Account.ID, p.Start)
		if err != nil {
			return err
		}
		l := meter.ReconcileLine{AccountID: q.Account.ID, CustomerID: q.Account.StripeCustomerID,
			PeriodStart: p.Start, PeriodEnd: p.End, BillableCents: meter.BillableCents(c, q.Plan),
			LedgerBilledCents: st.BilledCents}
		for _, it := range items {
			l.StripeBilledCents += it.AmountCents
		}
		if l.BillableCents == 0 && l.StripeBilledCents == 0 && l.LedgerBilledCents == 0 {
			continue
		}
		l = meter.NewReconcileLine(l)
		if l.Flagged {
			rep.Differences++
		}
		rep.Lines = append(rep.Lines, l)
	}
	return nil
}
