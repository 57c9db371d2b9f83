package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/meterd/meterd/export/postgres"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/migrations"
	"github.com/prometheus/client_golang/prometheus"
)

// ExportConfig configures the Postgres export of `meterd serve` and
// `meterd export`.
type ExportConfig struct {
	DatabaseURL    string
	Migrate        bool
	ExportBatch    int
	ExportInterval time.Duration
}

func (c *ExportConfig) bindExportFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", env("METER_DATABASE_URL", ""), "Postgres URL to export call records and daily aggregates to; empty = export off (env METER_DATABASE_URL)")
	fs.BoolVar(&c.Migrate, "migrate", envBool("METER_MIGRATE", false), "apply the Postgres migrations at start (env METER_MIGRATE)")
	fs.IntVar(&c.ExportBatch, "export-batch-size", envInt("METER_EXPORT_BATCH_SIZE", postgres.DefaultBatchSize), "events per Postgres transaction (env METER_EXPORT_BATCH_SIZE)")
	fs.DurationVar(&c.ExportInterval, "export-interval", envDuration("METER_EXPORT_INTERVAL", 2*time.Second), "longest an event waits before a partial batch is exported (env METER_EXPORT_INTERVAL)")
}

func (c *ExportConfig) exporterConfig() postgres.Config {
	return postgres.Config{DatabaseURL: c.DatabaseURL, BatchSize: c.ExportBatch, FlushInterval: c.ExportInterval}
}

// startExport runs the Postgres exporter when a database URL is set, and
// reports its backlog in /readyz. Export lag never makes meterd unready:
// metering goes on while Postgres is away.
func (m *Main) startExport(ctx context.Context, api *httpapi.Server, reg prometheus.Registerer) error {
	c := &m.Config.ExportConfig
	if c.DatabaseURL == "" {
		m.log.Info("postgres export off: --database-url / METER_DATABASE_URL is not set")
		return nil
	}
	if c.Migrate {
		if err := migrations.Up(ctx, c.DatabaseURL); err != nil {
			return fmt.Errorf("--migrate: %w", err)
		}
	}
	exp, err := postgres.New(m.ledger, c.exporterConfig(), m.log, reg)
	if err != nil {
		return err
	}
	m.exporter = exp
	api.AddReadiness("postgres_export", m.exportReady)
	m.goBackground(func(ctx context.Context) {
		if err := exp.Run(ctx); err != nil {
			m.log.Error("postgres export stopped", "error", err)
		}
	})
	return nil
}

func (m *Main) exportReady(ctx context.Context) (bool, any) {
	st, err := m.exporter.Status(ctx)
	if err != nil {
		return true, map[string]any{"error": err.Error()}
	}
	return true, map[string]any{"backlog_events": st.BacklogEvents, "lag_seconds": st.Lag.Seconds(),
		"over_bound": st.OverBound, "last_error": st.LastError}
}

const migrateUsage = `Usage: meterd migrate --database-url URL

Applies meterd's Postgres schema (migrations/005_usage_tracking.sql): the
eco_api_usage and eco_usage_daily tables and the increment_api_calls() and
aggregate_daily_usage() functions; and the cluster mode's shared state
(migrations/013_cluster.sql: meterd_nodes, meterd_quota_grants,
meterd_quota_leases, meterd_accounts, meterd_keys, meterd_revision,
meterd_node_counts). Running it again changes nothing.

Flags:
`

// runMigrate implements `meterd migrate`.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("meterd migrate", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), migrateUsage); fs.PrintDefaults() }
	url := fs.String("database-url", env("METER_DATABASE_URL", ""), "Postgres URL (env METER_DATABASE_URL)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("migrate: --database-url (or METER_DATABASE_URL) is required")
	}
	if err := migrations.Up(ctx, *url); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

const exportUsage = `Usage: meterd export --once --database-url URL [--data-dir DIR]

Exports every ledger event not yet in Postgres, exactly once, then exits.
It opens the ledger itself, so stop 'meterd serve' first (a running serve
exports continuously when it has a --database-url).

Flags:
`

// runExport implements `meterd export --once`.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("meterd export", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), exportUsage); fs.PrintDefaults() }
	var c ExportConfig
	c.bindExportFlags(fs)
	once := fs.Bool("once", false, "export the backlog once and exit (required)")
	dataDir := fs.String("data-dir", env("METER_DATA_DIR", "./data"), "meterd's data directory (env METER_DATA_DIR)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if !*once {
		return fmt.Errorf("export: --once is required (a running meterd serve exports continuously)%w", usageMark)
	}
	if c.DatabaseURL == "" {
		return fmt.Errorf("export: --database-url (or METER_DATABASE_URL) is required%w", usageMark)
	}
	l, err := ledger.Open(filepath.Join(*dataDir, ledger.FileName), ledger.Options{})
	if errors.Is(err, ledger.ErrInUse) {
		return fmt.Errorf("%w: a running meterd serve exports by itself when given --database-url", err)
	}
	if err != nil {
		return err
	}
	defer l.Close()
	exp, err := postgres.New(l, c.exporterConfig(), slog.New(slog.NewTextHandler(stderr, nil)), prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer exp.Close()
	n, err := exp.ExportOnce(ctx)
	fmt.Fprintf(stdout, "exported %d events\n", n)
	return err
}
