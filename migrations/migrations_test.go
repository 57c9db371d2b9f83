package migrations_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/migrations"
)

func TestUp(t *testing.T) {
	t.Run("EmptyDatabaseTwice", func(t *testing.T) {
		dbURL, conn := mustSchema(t)
		ctx := context.Background()
		for i := 0; i < 2; i++ {
			if err := migrations.Up(ctx, dbURL); err != nil {
				t.Fatalf("run %d: %v", i+1, err)
			}
		}
		assertSchema(t, conn)
		assertApplied(t, dbURL)
		var n int
		mustScan(t, conn, `SELECT count(*) FROM meterd_schema_version WHERE version_id = 5`, &n)
		if n != 1 {
			t.Fatalf("version 5 recorded %d times, want 1", n)
		}
	})

	t.Run("APITablesExist", func(t *testing.T) {
		dbURL, conn := mustSchema(t)
		ctx := context.Background()
		// The API's own schema, including its own goose history at a higher
		// version than ours: meterd must neither mind nor touch it.
		mustExec(t, conn, `
			CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);
			CREATE TABLE api_keys (id bigserial PRIMARY KEY, user_id bigint REFERENCES users, key_hash text);
			CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL,
				is_applied boolean NOT NULL, tstamp timestamp DEFAULT now());
			INSERT INTO goose_db_version (version_id, is_applied) SELECT g, true FROM generate_series(0, 7) g;
			INSERT INTO users (email) VALUES ('a@example.com');`)
		for i := 0; i < 2; i++ {
			if err := migrations.Up(ctx, dbURL); err != nil {
				t.Fatalf("run %d: %v", i+1, err)
			}
		}
		assertSchema(t, conn)
		var gooseRows, users int
		mustScan(t, conn, `SELECT count(*) FROM goose_db_version`, &gooseRows)
		mustScan(t, conn, `SELECT count(*) FROM users`, &users)
		if gooseRows != 8 || users != 1 {
			t.Fatalf("API tables changed: goose_db_version=%d rows, users=%d rows", gooseRows, users)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		dbURL, conn := mustSchema(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- migrations.Up(context.Background(), dbURL)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		assertSchema(t, conn)
	})

	t.Run("FileRerunByHand", func(t *testing.T) {
		// The API team may apply the file with its own tool as well: the SQL
		// itself must be re-runnable.
		_, conn := mustSchema(t)
		for _, name := range []string{"005_usage_tracking.sql", "006_billing_rules.sql"} {
			sql, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, conn, string(sql))
			mustExec(t, conn, string(sql))
		}
		assertSchema(t, conn)
	})

	t.Run("ErrNoDatabaseURL", func(t *testing.T) {
		if err := migrations.Up(context.Background(), ""); !errors.Is(err, migrations.ErrNoDatabaseURL) {
			t.Fatalf("err = %v, want ErrNoDatabaseURL", err)
		}
	})

	t.Run("BadURL", func(t *testing.T) {
		err := migrations.Up(context.Background(), "postgres://u:secret@[::1/x")
		if err == nil {
			t.Fatal("want error")
		}
	})
}

func TestStatus(t *testing.T) {
	dbURL, _ := mustSchema(t)
	ctx := context.Background()
	st, err := migrations.Status(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) < 3 || st[0].Version != 5 || st[0].Applied || st[1].Version != 6 || st[1].Applied || st[2].Version != 13 {
		t.Fatalf("before Up: %+v", st)
	}
	if err := migrations.Up(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	assertApplied(t, dbURL)
}

func assertApplied(t *testing.T, dbURL string) {
	t.Helper()
	st, err := migrations.Status(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	// Later files (013_cluster.sql, ...) are checked by their own tests;
	// 005 must be first and applied.
	if len(st) < 2 || st[0].Version != 5 || !st[0].Applied || st[0].AppliedAt.IsZero() || st[1].Version != 6 || !st[1].Applied {
		t.Fatalf("status: %+v", st)
	}
	if st[0].Name != "005_usage_tracking.sql" || st[1].Name != "006_billing_rules.sql" {
		t.Fatalf("names = %q, %q", st[0].Name, st[1].Name)
	}
	for _, m := range st {
		if !m.Applied {
			t.Fatalf("migration %s not applied: %+v", m.Name, st)
		}
	}
}

// assertSchema checks that every object of 005 exists in the test schema and
// that the functions work.
func assertSchema(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for _, table := range []string{"eco_api_usage", "eco_usage_daily", "eco_usage_endpoint_daily", "eco_api_call_counters"} {
		var ok bool
		mustScan(t, conn, `SELECT to_regclass('`+table+`') IS NOT NULL`, &ok)
		if !ok {
			t.Fatalf("table %s missing", table)
		}
	}
	var total int64
	mustScan(t, conn, `SELECT increment_api_calls('acct_schema', '2026-01-01Z', 0)`, &total)
	var rows int64
	mustScan(t, conn, `SELECT aggregate_daily_usage('2026-01-01')`, &rows)
	// 006: no argument means yesterday (UTC), and increment_api_calls
	// says plainly that the exporter already calls it.
	mustScan(t, conn, `SELECT aggregate_daily_usage()`, &rows)
	var comment string
	mustScan(t, conn, `SELECT obj_description('increment_api_calls(text, timestamptz, bigint)'::regprocedure, 'pg_proc')`, &comment)
	if !strings.Contains(comment, "must NOT call it as well") {
		t.Fatalf("increment_api_calls comment = %q", comment)
	}
}

// mustSchema creates an empty schema for one test and returns a URL whose
// search_path points at it, plus a connection using that URL.
func mustSchema(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	base := os.Getenv("METER_TEST_DATABASE_URL")
	if base == "" {
		t.Skip("METER_TEST_DATABASE_URL not set: skipping Postgres integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "meterd_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close(context.Background())
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return u.String(), conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("exec: %v", err)
	}
}

func mustScan(t *testing.T, conn *pgx.Conn, sql string, dst ...any) {
	t.Helper()
	if err := conn.QueryRow(context.Background(), sql).Scan(dst...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestUp_ClusterTables checks that 013_cluster.sql creates the shared state
// of cluster mode, with its one revision row, and that running Up again
// keeps that row (and its count) as it was.
func TestUp_ClusterTables(t *testing.T) {
	dbURL, conn := mustSchema(t)
	ctx := context.Background()
	if err := migrations.Up(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"meterd_nodes", "meterd_quota_grants", "meterd_quota_leases",
		"meterd_revision", "meterd_accounts", "meterd_keys", "meterd_node_counts"} {
		var ok bool
		mustScan(t, conn, `SELECT to_regclass('`+table+`') IS NOT NULL`, &ok)
		if !ok {
			t.Fatalf("table %s missing", table)
		}
	}
	mustExec(t, conn, `UPDATE meterd_revision SET revision = 7`)
	if err := migrations.Up(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	var rows, rev int64
	mustScan(t, conn, `SELECT count(*), max(revision) FROM meterd_revision`, &rows, &rev)
	if rows != 1 || rev != 7 {
		t.Fatalf("meterd_revision: %d rows, revision %d; want 1 row at 7", rows, rev)
	}
	// The grant check refuses a negative total, whatever a buggy release does.
	if _, err := conn.Exec(ctx, `INSERT INTO meterd_quota_grants (account_id, period_start, granted) VALUES ('a', now(), -1)`); err == nil {
		t.Fatal("negative grant accepted")
	}
}
