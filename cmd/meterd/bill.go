package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
)

var _ httpapi.Biller = (*billing.Service)(nil)

// BillingConfig is the Stripe overage billing part of Config.
type BillingConfig struct {
	StripeSecretKey string
	StripeAPIBase   string
	Currency        string
	BillingSchedule string
	CronSecret      string
	// BillingGrace is how long a closed period stays open to late
	// commits before it is finalized.
	BillingGrace time.Duration
}

// bindBillingFlags declares the billing flags with env-var defaults.
func (c *BillingConfig) bindBillingFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.StripeSecretKey, "stripe-secret-key", env("STRIPE_SECRET_KEY", ""), "Stripe secret key; overage billing is disabled without it. Prefer the env var: flags show in ps (env STRIPE_SECRET_KEY)")
	fs.StringVar(&c.StripeAPIBase, "stripe-api-base", env("STRIPE_API_BASE", ""), "Stripe API base URL override, e.g. a stripe-mock for tests (env STRIPE_API_BASE)")
	fs.StringVar(&c.Currency, "currency", env("METER_CURRENCY", billing.DefaultCurrency), "currency of overage invoice items, lower-case ISO 4217 (env METER_CURRENCY)")
	fs.StringVar(&c.BillingSchedule, "billing-schedule", env("METER_BILLING_SCHEDULE", billing.DefaultSchedule), "cron expression, in UTC, of the in-process overage billing run (env METER_BILLING_SCHEDULE)")
	fs.StringVar(&c.CronSecret, "cron-secret", env("METER_CRON_SECRET", ""), "bearer token accepted besides the admin token on POST /api/cron/process-overage (env METER_CRON_SECRET)")
	fs.DurationVar(&c.BillingGrace, "billing-grace", envDuration("METER_BILLING_GRACE", billing.DefaultGrace), "how long after a period ends it stays open to late commits before it is finalized; later calls are billed as late charges (env METER_BILLING_GRACE)")
}

func (c *BillingConfig) validateBilling() error {
	if _, err := billing.ParseSchedule(c.BillingSchedule); err != nil {
		return fmt.Errorf("--billing-schedule: %w", err)
	}
	if c.BillingGrace <= 0 {
		return errors.New("--billing-grace: must be a positive duration such as 1h")
	}
	if err := billing.CheckCurrency(c.Currency); err != nil {
		return fmt.Errorf("--currency: %w", err)
	}
	return nil
}

// service builds the billing service over a billing store (the ledger, or
// the cluster's Postgres store) and a meter.
func (c *BillingConfig) service(store meter.BillingStore, m *meter.Meter, log *slog.Logger, reg prometheus.Registerer) (*billing.Service, error) {
	return billing.New(billing.Config{SecretKey: c.StripeSecretKey, APIBase: c.StripeAPIBase,
		Currency: c.Currency, Store: store, Accounts: m, Logger: log, Registerer: reg, Grace: c.BillingGrace, Notices: m})
}

// startBilling registers the billing routes on api and, when a Stripe key
// is configured, starts the scheduler (which first catches up a run missed
// while meterd was down) and the loop that retries open intents until they
// resolve. Without a key charging is disabled (one log line; charging
// routes answer 503), but previews still work.
func (m *Main) startBilling(ctx context.Context, api *httpapi.Server, reg prometheus.Registerer) error {
	c := &m.Config.BillingConfig
	svc, err := m.billingService(reg)
	if err != nil {
		return err
	}
	api.RegisterBilling(svc, c.CronSecret)
	if c.StripeSecretKey == "" {
		m.log.Info("overage billing disabled: STRIPE_SECRET_KEY is not set (previews still work)")
		return nil
	}
	done, err := svc.Schedule(ctx, c.BillingSchedule)
	if err != nil {
		return err
	}
	// Close waits for the scheduler (and a run in progress) before it
	// closes the ledger.
	m.goBackground(func(context.Context) { <-done })
	m.goBackground(svc.RetryLoop)
	m.log.Info("overage billing enabled", "schedule", c.BillingSchedule, "currency", c.Currency,
		"cron_secret", c.CronSecret != "", "stripe_api_base", c.StripeAPIBase)
	return nil
}

const billUsage = `Usage: meterd bill [--dry-run | --reconcile] [--period YYYY-MM] [--json] [flags]

Bills Pro overage to Stripe now, from the ledger in --data-dir: open
intents are retried first, then every open or recently closed period is
billed, and closed periods are finalized. --dry-run lists what would be
charged and each period's projected total, touching neither Stripe nor the
ledger (no Stripe key needed). --period bills only the periods starting
in that month. --reconcile reports, per account period of --period (default
this month), what the ledger billed, what Stripe holds and what is due, and
exits non-zero if any differ. With --webhooks (the default) the run's
billing.charge_created, charge_failed and period_closed notices are stored
in the ledger's outbox, and the next 'meterd serve' delivers them.

A running 'meterd serve' holds the ledger; ask it instead:
  curl -X POST -H "Authorization: Bearer $METER_CRON_SECRET" http://LISTEN/api/cron/process-overage

Flags:
`

// billFlags are the serve flags `meterd bill` reads: where the ledger and
// the plans are, how to reach Stripe, and the address for the hint when a
// server holds the ledger.
var billFlags = []string{"data-dir", "listen", "plans", "node-id", "log-level", "log-format",
	"stripe-secret-key", "stripe-api-base", "currency", "billing-grace", "webhooks", "webhook-thresholds"}

// runBill implements `meterd bill`.
func runBill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c Config
	fs := flag.NewFlagSet("meterd bill", flag.ContinueOnError)
	c.bindSubset(fs, billFlags...)
	dryRun := fs.Bool("dry-run", false, "report what would be charged; change nothing")
	period := fs.String("period", "", "bill only periods starting in this month, YYYY-MM")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	reconcile := fs.Bool("reconcile", false, "compare ledger billed, Stripe billed and due per account period; change nothing")
	fs.Usage = func() { fmt.Fprint(fs.Output(), billUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := c.validate(); err != nil {
		return err
	}
	if *reconcile {
		return runReconcile(ctx, &c, *period, *asJSON, stdout, stderr)
	}
	if !*dryRun && c.StripeSecretKey == "" {
		return errors.New("STRIPE_SECRET_KEY is not set: it is needed to charge (--dry-run works without it)")
	}
	rep, err := billOffline(ctx, &c, meter.BillingOptions{DryRun: *dryRun, Period: *period}, stderr)
	if err != nil {
		return err
	}
	if err := printReport(stdout, rep, *asJSON); err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("%d charges failed or have no answer from Stripe yet; the next run retries them", rep.Errors)
	}
	return nil
}

// billOffline opens the ledger itself, so it works only while no server
// holds it; otherwise it says how to ask the server.
func billOffline(ctx context.Context, c *Config, opts meter.BillingOptions, stderr io.Writer) (meter.BillingReport, error) {
	var rep meter.BillingReport
	err := withOfflineService(ctx, c, stderr, inUseHint(c, opts), func(svc *billing.Service) error {
		var err error
		rep, err = svc.Bill(ctx, opts)
		return err
	})
	return rep, err
}

// withOfflineService opens the ledger and a meter on it, and calls fn with
// a billing service over them; hint is printed if a server holds the
// ledger.
func withOfflineService(ctx context.Context, c *Config, stderr io.Writer, hint string, fn func(*billing.Service) error) error {
	path := filepath.Join(c.DataDir, "meter.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no ledger in --data-dir %s: %w", c.DataDir, err)
	}
	l, err := ledger.Open(path, ledger.Options{NodeID: c.NodeID})
	if errors.Is(err, ledger.ErrInUse) {
		fmt.Fprint(stderr, hint)
	}
	if err != nil {
		return err
	}
	defer l.Close()
	if err := refuseClusterLedger(ctx, l, c.Listen); err != nil {
		return err
	}
	plans := meter.DefaultPlans()
	if c.PlansFile != "" {
		if plans, err = meter.LoadPlans(c.PlansFile); err != nil {
			return err
		}
	}
	m, err := meter.New(ctx, meter.Config{Store: l, Plans: plans})
	if err != nil {
		return err
	}
	if c.Webhooks {
		// billing.* notices go to the outbox as a server's run would put
		// them; the next meterd serve delivers them.
		th, err := loadThresholds(c.WebhookThresholds)
		if err != nil {
			return err
		}
		m.SetNotices(th, l)
	}
	svc, err := c.BillingConfig.service(l, m, newLogger(stderr, c.LogLevel, c.LogFormat), nil)
	if err != nil {
		return err
	}
	return fn(svc)
}

// runReconcile implements `meterd bill --reconcile`.
func runReconcile(ctx context.Context, c *Config, period string, asJSON bool, stdout, stderr io.Writer) error {
	if c.StripeSecretKey == "" {
		return errors.New("STRIPE_SECRET_KEY is not set: it is needed to list what Stripe holds")
	}
	if period == "" {
		period = time.Now().UTC().Format("2006-01")
	}
	hint := fmt.Sprintf("meterd bill: a running meterd serve holds the ledger; ask it:\n"+
		"  curl -H \"Authorization: Bearer $METER_ADMIN_TOKEN\" http://%s/api/admin/billing/reconcile?period=%s\n", c.Listen, period)
	var rep meter.ReconcileReport
	err := withOfflineService(ctx, c, stderr, hint, func(svc *billing.Service) error {
		var err error
		rep, err = svc.Reconcile(ctx, period)
		return err
	})
	if err != nil {
		return err
	}
	if err := printReconcile(stdout, rep, asJSON); err != nil {
		return err
	}
	if rep.Differences > 0 {
		return fmt.Errorf("%d account periods differ between the ledger and Stripe", rep.Differences)
	}
	return nil
}

// printReconcile writes the reconciliation as a table, or as JSON.
func printReconcile(w io.Writer, rep meter.ReconcileReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tPERIOD START\tBILLABLE\tLEDGER BILLED\tSTRIPE BILLED\tDUE\tDIFFERENCE\tNOTE")
	for _, l := range rep.Lines {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.AccountID, l.PeriodStart.Format(time.DateOnly),
			money(l.BillableCents), money(l.LedgerBilledCents), money(l.StripeBilledCents), money(l.DueCents),
			money(l.DifferenceCents), l.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s: %d account periods, %d differences\n", rep.Period, len(rep.Lines), rep.Differences)
	return err
}

// inUseHint tells how to bill through the server that holds the ledger.
func inUseHint(c *Config, opts meter.BillingOptions) string {
	query := ""
	if opts.Period != "" {
		query = "?period=" + opts.Period
	}
	if opts.DryRun {
		return fmt.Sprintf("meterd bill: a running meterd serve holds the ledger; ask it for the preview:\n"+
			"  curl -H \"Authorization: Bearer $METER_ADMIN_TOKEN\" http://%s/api/admin/billing/preview%s\n", c.Listen, query)
	}
	return fmt.Sprintf("meterd bill: a running meterd serve holds the ledger; ask it to bill:\n"+
		"  curl -X POST -H \"Authorization: Bearer $METER_CRON_SECRET\" http://%s/api/cron/process-overage%s\n"+
		"(the admin token works too)\n", c.Listen, query)
}

// printReport writes the report as a table, or as JSON.
func printReport(w io.Writer, rep meter.BillingReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tPERIOD\tSTATUS\tOVERAGE CALLS\tBILLABLE\tBILLED\tDUE\tCHARGE\tPROJECTED\tNOTE")
	for _, l := range rep.Lines {
		note := l.Reason
		if l.Error != "" {
			note = l.Error
		}
		if l.Finalized {
			note = "finalized " + note
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", l.AccountID, periodText(l), l.Status, l.OverageCalls,
			money(l.BillableCents), money(l.BilledCents), money(l.DueCents), money(l.ChargeCents), money(l.ProjectedCents), note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, rep.String())
	return err
}

func periodText(l meter.BillingLine) string {
	if l.PeriodStart.IsZero() {
		return "-"
	}
	return l.PeriodStart.Format(time.DateOnly) + ".." + l.PeriodEnd.Format(time.DateOnly)
}

// money shows cents as units with two decimals.
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}
