package ledger_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// fixtureV1 unpacks testdata/format1: a ledger written by meterd db94890
// (format 1, counters rewritten by every commit): accounts acme (pro,
// one key, 45 calls in November 2026, 5 of them with idempotency ids and
// status 500) and tiny (free, no calls).
func fixtureV1(t *testing.T) string {
	t.Helper()
	f, err := os.Open("testdata/format1/meter.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "meter.db")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

var nov2026 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// TestLedger_Format: a format 1 ledger (written by the landed main)
// opens, upgrades in place and keeps its counts, idempotency records and
// sequence; a file of a newer format than this binary knows is refused
// with ErrFormatTooNew and left byte for byte as it was.
func TestLedger_Format(t *testing.T) {
	t.Run("UpgradeV1", func(t *testing.T) {
		path := fixtureV1(t)
		if f, err := ledger.MetaFormat(path); err != nil || f != "1" {
			t.Fatalf("fixture format %q, %v", f, err)
		}
		l := mustOpenAt(t, path)
		c, err := l.Counter(ctx, "acme", nov2026)
		if err != nil || c.Calls != 45 {
			t.Fatalf("upgraded counter %+v, %v; want 45 calls", c, err)
		}
		if _, found, err := l.Idempotency(ctx, "acme", "idem-3"); err != nil || !found {
			t.Fatalf("idempotency record lost: %v %v", found, err)
		}
		ev := newEvent("acme", nov2026.Add(48*time.Hour), meter.Allowed, false)
		ev.PeriodStart = nov2026
		if err := l.Append(ctx, ev, true); err != nil || ev.Seq != 46 {
			t.Fatalf("append after upgrade: seq %d, %v", ev.Seq, err)
		}
		if rep := mustVerify(t, l); !rep.OK || rep.Events != 46 {
			t.Fatalf("verify after upgrade: %+v", rep)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if f, err := ledger.MetaFormat(path); err != nil || f != "2" {
			t.Fatalf("format after upgrade %q, %v", f, err)
		}
		l = mustOpenAt(t, path)
		if c, _ := l.Counter(ctx, "acme", nov2026); c.Calls != 46 {
			t.Fatalf("reopened counter %+v", c)
		}
	})
	t.Run("ErrFormatTooNew", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "meter.db")
		l := mustOpenAt(t, path)
		if err := l.Append(ctx, newEvent("a", jan, meter.Allowed, false), true); err != nil {
			t.Fatal(err)
		}
		l.Close()
		if err := ledger.SetMetaFormat(path, "3"); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(path)
		_, err := ledger.Open(path, ledger.Options{})
		if !errors.Is(err, ledger.ErrFormatTooNew) {
			t.Fatalf("open a format 3 file: %v, want ErrFormatTooNew", err)
		}
		t.Logf("refusal reads: %v", err)
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatal("the refused file was modified")
		}
		if _, err := ledger.VerifyFile(ctx, path); !errors.Is(err, ledger.ErrFormatTooNew) {
			t.Fatalf("verify a format 3 file: %v", err)
		}
	})
}
