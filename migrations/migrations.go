// Package migrations owns meterd's Postgres schema: the embedded SQL files
// and the code that applies them to the API's database.
//
// It uses pressly/goose (v3 Provider API) because goose accepts a lone
// version 5 file, the 005_usage_tracking.sql name the API team expects,
// where jackc/tern insists on a gap-free sequence starting at 001. goose
// works on database/sql, so this package opens the database through pgx's
// stdlib driver.
//
// The applied versions live in meterd's own table, meterd_schema_version,
// never in goose's default goose_db_version, which the API's own migrations
// may already use for a different sequence. A Postgres advisory lock makes
// concurrent runs (several nodes starting with --migrate) apply each file
// once. migrations must never drop or rewrite data, and never refer to the
// API's own tables.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// VersionTable is the table, in the connection's current schema, that
// records which migrations have been applied.
const VersionTable = "meterd_schema_version"

// lockID is the advisory lock key serialising meterd migration runs. It is
// meterd's own ("meterd" in ASCII, then 5), so the API's goose runs, which
// use goose's default key, neither wait for it nor are waited for.
const lockID int64 = 0x6d65746572640005

// ErrNoDatabaseURL: Up or Status was called without a database URL.
var ErrNoDatabaseURL = errors.New("migrations: no database url")

// Migration is the state of one embedded migration file in a database.
type Migration struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time // zero unless Applied
}

// Up applies every embedded migration the database has not recorded yet.
// It is idempotent: a second run finds nothing pending and changes nothing.
// Objects are created in the first schema of the connection's search_path
// (set search_path in the URL to use another schema than public).
func Up(ctx context.Context, databaseURL string) error {
	return withProvider(ctx, databaseURL, func(p *goose.Provider) error {
		results, err := p.Up(ctx)
		for _, r := range results {
			slog.InfoContext(ctx, "migration applied",
				"file", r.Source.Path, "duration", r.Duration, "error", r.Error)
		}
		if err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		return nil
	})
}

// Status reports each embedded migration and whether the database has
// applied it, in version order.
func Status(ctx context.Context, databaseURL string) ([]Migration, error) {
	var out []Migration
	err := withProvider(ctx, databaseURL, func(p *goose.Provider) error {
		st, err := p.Status(ctx)
		if err != nil {
			return fmt.Errorf("migrate status: %w", err)
		}
		for _, s := range st {
			out = append(out, Migration{
				Version:   s.Source.Version,
				Name:      s.Source.Path,
				Applied:   s.State == goose.StateApplied,
				AppliedAt: s.AppliedAt,
			})
		}
		return nil
	})
	return out, err
}

// withProvider opens a short-lived database handle for one migration
// command; meterd's exporter keeps its own pool.
func withProvider(ctx context.Context, databaseURL string, fn func(*goose.Provider) error) error {
	db, err := openDB(databaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := newProvider(db)
	if err != nil {
		return err
	}
	return fn(p)
}

func openDB(databaseURL string) (*sql.DB, error) {
	if databaseURL == "" {
		return nil, ErrNoDatabaseURL
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		// pgconn redacts the password in its parse errors.
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		// An unreachable host should fail `meterd migrate` in seconds, not
		// after the operating system's TCP timeout.
		cfg.ConnectTimeout = 10 * time.Second
	}
	return stdlib.OpenDB(*cfg), nil
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	// Probe the lock every second for up to 10 minutes: a concurrent run
	// holds it only while it applies a file.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()),
	)
	if err != nil {
		return nil, fmt.Errorf("migration provider: %w", err)
	}
	return p, nil
}
