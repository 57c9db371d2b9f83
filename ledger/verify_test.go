package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// verifyMarch is the month the verify tests meter in.
var verifyMarch = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// mustPutAccounts stores accounts with the given ids.
func mustPutAccounts(tb testing.TB, l *ledger.Ledger, ids ...string) {
	tb.Helper()
	for _, id := range ids {
		a := meter.Account{ID: id, Name: id, Email: id + "@example.com", Plan: "pro", CreatedAt: verifyMarch}
		if err := l.PutAccount(context.Background(), a); err != nil {
			tb.Fatal(err)
		}
	}
}

// verifyEvent is an event of account at t in t's calendar month.
func verifyEvent(account string, t time.Time, endpoint string, d meter.Decision, overage bool, status int) *meter.Event {
	return &meter.Event{Time: t, PeriodStart: meter.PeriodAt(time.Time{}, t).Start, AccountID: account,
		KeyID: "key_" + account, Endpoint: endpoint, Method: "GET", Status: status, LatencyMicros: 700,
		Decision: d, Overage: overage}
}

// verifyWorkload is 14 events of accounts a and b over February and March:
// two periods, five account-days, three endpoints, denied, overage and
// failed calls.
func verifyWorkload() []*meter.Event {
	feb := time.Date(2026, 2, 27, 9, 0, 0, 0, time.UTC)
	return []*meter.Event{
		verifyEvent("a", feb, "/v1/things", meter.Allowed, false, 200),
		verifyEvent("a", feb.Add(time.Hour), "/v1/things/{id}", meter.Allowed, false, 500),
		verifyEvent("b", feb.Add(2*time.Hour), "/v1/things", meter.Denied, false, 0),
		verifyEvent("a", verifyMarch.Add(time.Hour), "/v1/things", meter.Allowed, true, 200),
		verifyEvent("a", verifyMarch.Add(2*time.Hour), "/v1/things", meter.Allowed, true, 404),
		verifyEvent("a", verifyMarch.Add(3*time.Hour), "/v1/other", meter.Allowed, false, 200),
		verifyEvent("b", verifyMarch.Add(4*time.Hour), "/v1/things", meter.Allowed, false, 200),
		verifyEvent("b", verifyMarch.Add(5*time.Hour), "/v1/things", meter.Denied, false, 0),
		verifyEvent("a", verifyMarch.Add(25*time.Hour), "/v1/things", meter.Allowed, false, 200),
		verifyEvent("b", verifyMarch.Add(26*time.Hour), "/v1/other", meter.Allowed, false, 200),
		verifyEvent("b", verifyMarch.Add(27*time.Hour), "/v1/other", meter.Allowed, false, 503),
		verifyEvent("a", verifyMarch.Add(49*time.Hour), "/v1/things/{id}", meter.Allowed, false, 200),
		verifyEvent("a", verifyMarch.Add(50*time.Hour), "/v1/things/{id}", meter.Denied, false, 0),
		verifyEvent("a", verifyMarch.Add(51*time.Hour), "/v1/things", meter.Allowed, false, 200),
	}
}

// mustOpenVerifyLedger opens a ledger holding accounts a and b and the
// verify workload.
func mustOpenVerifyLedger(tb testing.TB) *ledger.Ledger {
	tb.Helper()
	l := MustOpenLedger(tb)
	mustPutAccounts(tb, l, "a", "b")
	for _, ev := range verifyWorkload() {
		if err := l.Append(context.Background(), ev, true); err != nil {
			tb.Fatal(err)
		}
	}
	return l
}

func mustVerify(tb testing.TB, l *ledger.Ledger) ledger.VerifyReport {
	tb.Helper()
	rep, err := l.Verify(context.Background())
	if err != nil {
		tb.Fatalf("verify: %v", err)
	}
	return rep
}

// problemKinds lists a report's problem kinds, sorted, without repeats.
func problemKinds(rep ledger.VerifyReport) []string {
	var kinds []string
	for _, p := range rep.Problems {
		kinds = append(kinds, p.Kind)
	}
	slices.Sort(kinds)
	return slices.Compact(kinds)
}

func TestLedger_Verify(t *testing.T) {
	for _, chunk := range []int{10000, 3, 1} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			defer ledger.SetVerifyChunk(chunk)()
			l := mustOpenVerifyLedger(t)
			rep := mustVerify(t, l)
			if !rep.OK || len(rep.Problems) != 0 {
				t.Fatalf("clean ledger: ok=%v problems %+v", rep.OK, rep.Problems)
			}
			// Counters: a×Feb, b×Feb, a×Mar, b×Mar. Days: a 02-27, b 02-27,
			// a 03-01, b 03-01, a 03-02, b 03-02, a 03-03.
			want := ledger.VerifyReport{OK: true, FirstSeq: 1, LastSeq: 14, Events: 14, Accounts: 2,
				Counters: ledger.VerifyCount{Checked: 4}, Days: ledger.VerifyCount{Checked: 7}}
			got := rep
			got.StartedAt, got.TookSeconds, got.Problems = time.Time{}, 0, nil
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("report\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// mustCopyLedger backs l up into a new file and opens the copy.
func mustCopyLedger(tb testing.TB, l *ledger.Ledger) *ledger.Ledger {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "copy.db")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := l.Backup(context.Background(), f); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return mustOpenAt(tb, path)
}

func TestLedger_Verify_Corruption(t *testing.T) {
	ctx := context.Background()
	base := mustOpenVerifyLedger(t)
	tests := []struct {
		name   string
		damage func(l *ledger.Ledger) error
		want   []string // problem kinds, sorted
		at     string   // the first problem's At
	}{
		{"counter", func(l *ledger.Ledger) error { return l.OverwriteCounter(ctx, "a", verifyMarch, 99) },
			[]string{ledger.ProblemCounter}, "2026-03-01T00:00:00Z"},
		{"daily total", func(l *ledger.Ledger) error { return l.OverwriteDailyTotal(ctx, verifyMarch.AddDate(0, 0, 1), 1) },
			[]string{ledger.ProblemDailyTotal}, "2026-03-02"},
		{"event deleted", func(l *ledger.Ledger) error { return l.DeleteEvent(ctx, 7) },
			[]string{ledger.ProblemCounter, ledger.ProblemDaily, ledger.ProblemSeqGap}, "7..7"},
		{"key without account", func(l *ledger.Ledger) error {
			return l.PutKey(ctx, meter.APIKey{ID: "key_ghost", AccountID: "ghost", Prefix: "mk_ghost"})
		}, []string{ledger.ProblemMissingAccount}, "key_ghost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustCopyLedger(t, base)
			if rep := mustVerify(t, l); !rep.OK {
				t.Fatalf("copy before damage: %+v", rep.Problems)
			}
			if err := tt.damage(l); err != nil {
				t.Fatal(err)
			}
			rep := mustVerify(t, l)
			if rep.OK || !slices.Equal(problemKinds(rep), tt.want) || rep.Problems[0].At != tt.at {
				t.Fatalf("ok=%v problems %+v, want kinds %v at %q", rep.OK, rep.Problems, tt.want, tt.at)
			}
		})
	}
	t.Run("counter offline", func(t *testing.T) {
		l := mustCopyLedger(t, base)
		// Stored rows only: no deltas in memory for Close to add on top.
		if err := l.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.OverwriteCounter(ctx, "b", verifyMarch, 7); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.VerifyFile(ctx, l.Path())
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || len(rep.Problems) != 1 {
			t.Fatalf("ok=%v problems %+v", rep.OK, rep.Problems)
		}
		p := rep.Problems[0]
		want := "counter holds calls=7 overage=0 overage_micros=0 denied=1 last_call=2026-03-02T03:00:00Z; its events say calls=3 overage=0 overage_micros=0 denied=1 last_call=2026-03-02T03:00:00Z"
		if p.Kind != ledger.ProblemCounter || p.Account != "b" || p.Message != want {
			t.Fatalf("problem %+v", p)
		}
	})
	t.Run("last_seq", func(t *testing.T) {
		l := mustCopyLedger(t, base)
		l.Close()
		if err := ledger.SetMetaLastSeq(l.Path(), 20); err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.VerifyFile(ctx, l.Path())
		if err != nil {
			t.Fatal(err)
		}
		if got := problemKinds(rep); !slices.Equal(got, []string{ledger.ProblemLastSeq}) {
			t.Fatalf("problems %+v", rep.Problems)
		}
	})
}

func TestLedger_Verify_Pruned(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC) // retention cutoff: Feb 3
	l := MustOpenLedger(t)
	mustPutAccounts(t, l, "a")
	for day := time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC); day.Before(now); day = day.AddDate(0, 0, 1) {
		if err := l.Append(ctx, verifyEvent("a", day.Add(10*time.Hour), "/v1/things", meter.Allowed, false, 200), true); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := l.Prune(ctx, ledger.PruneOptions{Now: func() time.Time { return now }})
	if err != nil || rep.Events != 14 { // Jan 20 .. Feb 2
		t.Fatalf("prune: %d events, %v", rep.Events, err)
	}
	vr := mustVerify(t, l)
	feb3 := time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)
	if !vr.OK || !vr.Pruned || vr.CheckedFrom == nil || !vr.CheckedFrom.Equal(feb3) || vr.FirstSeq != 15 || vr.LastSeq != 50 {
		t.Fatalf("after prune: %+v", vr)
	}
	// Jan and Feb counters started before the oldest event: summarised,
	// not checkable. Days from Feb 3 (36 of them) are whole.
	if vr.Counters != (ledger.VerifyCount{Checked: 1, Unchecked: 2}) || vr.Days != (ledger.VerifyCount{Checked: 36, Unchecked: 14}) {
		t.Fatalf("counters %+v days %+v", vr.Counters, vr.Days)
	}
	// A wrong January counter cannot be told from pruned history; a wrong
	// March one can.
	if err := l.OverwriteCounter(ctx, "a", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 1); err != nil {
		t.Fatal(err)
	}
	if vr := mustVerify(t, l); !vr.OK {
		t.Fatalf("pruned period reported: %+v", vr.Problems)
	}
	if err := l.OverwriteCounter(ctx, "a", verifyMarch, 1); err != nil {
		t.Fatal(err)
	}
	if vr := mustVerify(t, l); !slices.Equal(problemKinds(vr), []string{ledger.ProblemCounter}) {
		t.Fatalf("march counter: %+v", vr.Problems)
	}
}

// TestLedger_Verify_Live verifies in tiny chunks while writers commit: no
// false alarm, and every event committed before Verify started counted.
func TestLedger_Verify_Live(t *testing.T) {
	defer ledger.SetVerifyChunk(2)()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := MustOpenLedger(t)
	accounts := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	mustPutAccounts(t, l, accounts...)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, acct := range accounts {
		wg.Go(func() {
			at := verifyMarch.Add(time.Duration(i) * time.Minute)
			for n := 0; ctx.Err() == nil; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ev := verifyEvent(acct, at.Add(time.Duration(n)*7*time.Minute), fmt.Sprintf("/v1/e%d", n%3), meter.Allowed, n%5 == 0, 200)
				if err := l.Append(ctx, ev, n%20 == 0); err != nil && !errors.Is(err, meter.ErrOverloaded) {
					t.Error(err)
					return
				}
			}
		})
	}
	for seq := uint64(0); seq < 2000 && ctx.Err() == nil; seq, _ = l.LastSeq(ctx) {
		time.Sleep(5 * time.Millisecond)
	}
	overlapped := 0
	for round := 0; round < 8; round++ {
		before, _ := l.LastSeq(ctx)
		rep := mustVerify(t, l)
		if !rep.OK || rep.LastSeq < before || rep.Events != int64(rep.LastSeq) {
			t.Errorf("round %d: ok=%v events %d last_seq %d (was %d before) problems %+v",
				round, rep.OK, rep.Events, rep.LastSeq, before, rep.Problems)
		}
		if rep.LastSeq > before {
			overlapped++
		}
		t.Logf("round %d: %d events, %d read while verifying, %d comparisons skipped as busy",
			round, rep.Events, rep.LastSeq-before, rep.Busy)
	}
	close(stop)
	if overlapped == 0 {
		t.Error("no verify round overlapped a commit: the test proves nothing")
	}
	wg.Wait()
	if rep := mustVerify(t, l); !rep.OK || rep.Busy != 0 {
		t.Fatalf("quiet ledger: %+v", rep)
	}
}

func TestVerifyFile(t *testing.T) {
	ctx := context.Background()
	t.Run("missing", func(t *testing.T) {
		_, err := ledger.VerifyFile(ctx, filepath.Join(t.TempDir(), "none.db"))
		if err == nil {
			t.Fatal("no error for a missing file")
		}
	})
	t.Run("foreign bbolt file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "other.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := ledger.VerifyFile(ctx, path); !errors.Is(err, ledger.ErrCorrupt) {
			t.Fatalf("err %v, want ErrCorrupt", err)
		}
	})
	t.Run("in use", func(t *testing.T) {
		l := mustOpenVerifyLedger(t)
		if _, err := ledger.VerifyFile(ctx, l.Path()); !errors.Is(err, ledger.ErrInUse) {
			t.Fatalf("err %v, want ErrInUse", err)
		}
	})
	t.Run("does not write", func(t *testing.T) {
		l := mustOpenVerifyLedger(t)
		l.Close()
		before, err := os.ReadFile(l.Path())
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := ledger.VerifyFile(ctx, l.Path()); err != nil || !rep.OK || rep.Events != 14 {
			t.Fatalf("verify: %+v, %v", rep, err)
		}
		after, _ := os.ReadFile(l.Path())
		if string(before) != string(after) {
			t.Fatal("VerifyFile changed the file")
		}
	})
}
