package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// mustSchema gives the test a fresh Postgres schema and returns a URL whose
// search_path points at it. The schema is dropped at the end.
func mustSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv("METER_TEST_DATABASE_URL")
	if base == "" {
		t.Skip("METER_TEST_DATABASE_URL not set: skipping Postgres integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to METER_TEST_DATABASE_URL: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "meterd_cmd_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func runCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("meterd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMigrateAndExportOnce runs the operator commands against a real
// Postgres: migrate twice on an empty schema, then export --once the
// calls a stopped server recorded — and a second export finds nothing
// left, because the cursor moved only after Postgres committed.
func TestMigrateAndExportOnce(t *testing.T) {
	dbURL := mustSchema(t)
	for i := 0; i < 2; i++ {
		if out := runCmd(t, "migrate", "--database-url", dbURL); !strings.Contains(out, "migrations applied") {
			t.Fatalf("migrate run %d: %s", i, out)
		}
	}
	dir := t.TempDir()
	p := startServe(t, dir)
	p.waitReady(t)
	key := setupAccount(t, p, "exp", "pro")
	for i := 0; i < 25; i++ {
		if code := do(t, "POST", p.base+"/v1/track", "", map[string]any{"api_key": key, "endpoint": "/v1/a", "method": "GET"}, nil); code != 200 {
			t.Fatalf("track: %d", code)
		}
	}
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.waitExit(t, 15*time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.stderr)
	}
	if out := runCmd(t, "export", "--once", "--database-url", dbURL, "--data-dir", dir); !strings.Contains(out, "exported 25 events") {
		t.Fatalf("first export: %s", out)
	}
	if out := runCmd(t, "export", "--once", "--database-url", dbURL, "--data-dir", dir); !strings.Contains(out, "exported 0 events") {
		t.Fatalf("second export: %s", out)
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, daily int64
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM eco_api_usage WHERE account_id = 'exp'").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(context.Background(), "SELECT coalesce(sum(api_calls), 0) FROM eco_usage_daily WHERE account_id = 'exp'").Scan(&daily); err != nil {
		t.Fatal(err)
	}
	if rows != 25 || daily != 25 {
		t.Fatalf("postgres holds %d rows and %d daily calls, want 25 and 25", rows, daily)
	}
}
