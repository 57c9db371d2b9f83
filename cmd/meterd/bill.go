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
}

// bindBillingFlags declares the billing flags with env-var defaults.
func (c *BillingConfig) bindBillingFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.StripeSecretKey, "stripe-secret-key", env("STRIPE_SECRET_KEY", ""), "Stripe secret key; overage billing is disabled without it. Prefer the env var: flags show in ps (env STRIPE_SECRET_KEY)")
	fs.StringVar(&c.StripeAPIBase, "stripe-api-base", env("STRIPE_API_BASE", ""), "Stripe API base URL override, e.g. a stripe-mock for tests (env STRIPE_API_BASE)")
	fs.StringVar(&c.Currency, "currency", env("METER_CURRENCY", billing.DefaultCurrency), "currency of overage invoice items, lower-case ISO 4217 (env METER_CURRENCY)")
	fs.StringVar(&c.BillingSchedule, "billing-schedule", env("METER_BILLING_SCHEDULE", billing.DefaultSchedule), "cron expression, in UTC, of the in-process overage billing run (env METER_BILLING_SCHEDULE)")
	fs.StringVar(&c.CronSecret, "cron-secret", env("METER_CRON_SECRET", ""), "bearer token accepted besides the admin token on POST /api/cron/process-overage (env METER_CRON_SECRET)")
}

func (c *BillingConfig) validateBilling() error {
	if _, err := billing.ParseSchedule(c.BillingSchedule); err != nil {
		return fmt.Errorf("--billing-schedule: %w", err)
	}
	return nil
}

// service builds the billing service over a ledger and a meter.
func (c *BillingConfig) service(l *ledger.Ledger, m *meter.Meter, log *slog.Logger, reg prometheus.Registerer) (*billing.Service, error) {
	return billing.New(billing.Config{SecretKey: c.StripeSecretKey, APIBase: c.StripeAPIBase,
		Currency: c.Currency, Store: l, Accounts: m, Logger: log, Registerer: reg, Notices: m})
}

// startBilling registers the billing routes on api and, when a Stripe key
// is configured, starts the scheduler and retries the intents a previous
// process left open. Without a key billing is disabled: one log line, and
// the routes answer 503.
func (m *Main) startBilling(ctx context.Context, api *httpapi.Server, reg prometheus.Registerer) error {
	c := &m.Config.BillingConfig
	if c.StripeSecretKey == "" {
		m.log.Info("overage billing disabled: STRIPE_SECRET_KEY is not set")
		api.RegisterBilling(nil, c.CronSecret)
		return nil
	}
	svc, err := c.service(m.ledger, m.meter, m.log, reg)
	if err != nil {
		return err
	}
	api.RegisterBilling(svc, c.CronSecret)
	done, err := svc.Schedule(ctx, c.BillingSchedule)
	if err != nil {
		return err
	}
	// Close waits for the scheduler (and a run in progress) before it
	// closes the ledger.
	m.goBackground(func(context.Context) { <-done })
	m.goBackground(func(ctx context.Context) {
		if _, err := svc.RetryPending(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("retrying open billing intents at start failed; the next run retries them", "error", err)
		}
	})
	m.log.Info("overage billing enabled", "schedule", c.BillingSchedule, "currency", c.Currency,
		"cron_secret", c.CronSecret != "", "stripe_api_base", c.StripeAPIBase)
	return nil
}

const billUsage = `Usage: meterd bill [--dry-run] [--period YYYY-MM] [--json] [flags]

Bills Pro overage to Stripe now, from the ledger in --data-dir: open
intents are retried first, then every open or recently closed period is
billed, and closed periods are finalized. --dry-run lists what would be
charged and each period's projected total, touching neither Stripe nor the
ledger. --period bills only the periods starting in that month.

A running 'meterd serve' holds the ledger; ask it instead:
  curl -X POST -H "Authorization: Bearer $METER_CRON_SECRET" http://LISTEN/api/cron/process-overage

Flags:
`

// runBill implements `meterd bill`.
func runBill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c Config
	fs := flag.NewFlagSet("meterd bill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.bindFlags(fs)
	dryRun := fs.Bool("dry-run", false, "report what would be charged; change nothing")
	period := fs.String("period", "", "bill only periods starting in this month, YYYY-MM")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() { fmt.Fprint(stderr, billUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := c.validate(); err != nil {
		return err
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
	path := filepath.Join(c.DataDir, "meter.db")
	if _, err := os.Stat(path); err != nil {
		return meter.BillingReport{}, fmt.Errorf("no ledger in --data-dir %s: %w", c.DataDir, err)
	}
	l, err := ledger.Open(path, ledger.Options{NodeID: c.NodeID})
	if errors.Is(err, ledger.ErrInUse) {
		fmt.Fprint(stderr, inUseHint(c, opts))
	}
	if err != nil {
		return meter.BillingReport{}, err
	}
	defer l.Close()
	plans := meter.DefaultPlans()
	if c.PlansFile != "" {
		if plans, err = meter.LoadPlans(c.PlansFile); err != nil {
			return meter.BillingReport{}, err
		}
	}
	m, err := meter.New(ctx, meter.Config{Store: l, Plans: plans})
	if err != nil {
		return meter.BillingReport{}, err
	}
	svc, err := c.BillingConfig.service(l, m, newLogger(stderr, c.LogLevel, c.LogFormat), nil)
	if err != nil {
		return meter.BillingReport{}, err
	}
	return svc.Bill(ctx, opts)
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
	fmt.Fprintln(tw, "ACCOUNT\tPERIOD\tSTATUS\tOVERAGE CALLS\tBILLABLE\tBILLED\tCHARGE\tPROJECTED\tNOTE")
	for _, l := range rep.Lines {
		note := l.Reason
		if l.Error != "" {
			note = l.Error
		}
		if l.Finalized {
			note = "finalized " + note
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", l.AccountID, periodText(l), l.Status, l.OverageCalls,
			money(l.BillableCents), money(l.BilledCents), money(l.ChargeCents), money(l.ProjectedCents), note)
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
