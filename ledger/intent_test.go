package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

var (
	billNov      = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	billDec      = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	billNow      = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	billLeaseTTL = time.Minute
)

// openBillingLedger opens a ledger in a temporary directory and closes it
// when the test ends.
func openBillingLedger(tb testing.TB, path string) *ledger.Ledger {
	tb.Helper()
	if path == "" {
		path = filepath.Join(tb.TempDir(), "meter.db")
	}
	l, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		tb.Fatalf("open ledger: %v", err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func mustLease(tb testing.TB, l *ledger.Ledger, owner string, now time.Time) {
	tb.Helper()
	if _, err := l.AcquireBillingLease(context.Background(), owner, now, billLeaseTTL); err != nil {
		tb.Fatalf("acquire lease for %s: %v", owner, err)
	}
}

func novIntent(account string, cents, covered int64) meter.BillingIntent {
	return meter.BillingIntent{AccountID: account, CustomerID: "cus_" + account, PeriodStart: billNov, PeriodEnd: billDec,
		AmountCents: cents, Currency: "usd", Calls: covered, CallsCovered: covered, CreatedAt: billNow}
}

func TestLedger_AcquireBillingLease(t *testing.T) {
	ctx := context.Background()
	l := openBillingLedger(t, "")
	steps := []struct {
		name    string
		owner   string
		at      time.Duration // after billNow
		release bool
		wantErr error
		holder  string // lease holder reported on ErrBillingBusy
	}{
		{"FirstTakes", "a", 0, false, nil, ""},
		{"OtherBusy", "b", 10 * time.Second, false, meter.ErrBillingBusy, "a"},
		{"OwnerRenews", "a", 50 * time.Second, false, nil, ""},
		{"StillBusyAfterFirstTTL", "b", 70 * time.Second, false, meter.ErrBillingBusy, "a"},
		{"TakenAfterExpiry", "b", 111 * time.Second, false, nil, ""},
		{"ReleaseByNonHolderIgnored", "a", 112 * time.Second, true, nil, ""},
		{"StillHeld", "c", 113 * time.Second, false, meter.ErrBillingBusy, "b"},
		{"ReleaseByHolder", "b", 114 * time.Second, true, nil, ""},
		{"FreeAgain", "c", 115 * time.Second, false, nil, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			now := billNow.Add(s.at)
			if s.release {
				if err := l.ReleaseBillingLease(ctx, s.owner); err != nil {
					t.Fatal(err)
				}
				return
			}
			lease, err := l.AcquireBillingLease(ctx, s.owner, now, billLeaseTTL)
			if !errors.Is(err, s.wantErr) {
				t.Fatalf("err = %v, want %v", err, s.wantErr)
			}
			want := meter.BillingLease{Owner: s.owner, Expires: now.Add(billLeaseTTL)}
			if s.wantErr != nil {
				if lease.Owner != s.holder {
					t.Fatalf("holder = %q, want %q", lease.Owner, s.holder)
				}
				return
			}
			if lease != want {
				t.Fatalf("lease = %+v, want %+v", lease, want)
			}
		})
	}
	t.Run("Invalid", func(t *testing.T) {
		var verr *meter.ValidationError
		if _, err := l.AcquireBillingLease(ctx, "", billNow, billLeaseTTL); !errors.As(err, &verr) {
			t.Fatalf("err = %v, want a validation error", err)
		}
	})
}

func TestLedger_AcquireBillingLease_Concurrent(t *testing.T) {
	l := openBillingLedger(t, "")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.AcquireBillingLease(context.Background(), string(rune('a'+i)), billNow, billLeaseTTL)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, meter.ErrBillingBusy):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d owners got the lease, want exactly 1", won)
	}
}

func TestLedger_CreateBillingIntent(t *testing.T) {
	ctx := context.Background()
	l := openBillingLedger(t, "")

	t.Run("NeedsLease", func(t *testing.T) {
		_, err := l.CreateBillingIntent(ctx, "nobody", novIntent("acct", 500, 5000), 0)
		if !errors.Is(err, meter.ErrBillingBusy) {
			t.Fatalf("err = %v, want ErrBillingBusy", err)
		}
	})
	mustLease(t, l, "run1", billNow)
	first, err := l.CreateBillingIntent(ctx, "run1", novIntent("acct", 500, 5000), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("Stamped", func(t *testing.T) {
		want := novIntent("acct", 500, 5000)
		want.Seq, want.IdempotencyKey, want.Status, want.UpdatedAt = 1, meter.IntentKey("acct", billNov, 1), meter.IntentPending, billNow
		if first != want {
			t.Fatalf("intent = %+v\nwant     %+v", first, want)
		}
		if first.IdempotencyKey != "meterd-overage-acct-20261101T000000Z-1" {
			t.Fatalf("key = %q", first.IdempotencyKey)
		}
	})
	refusals := []struct {
		name   string
		owner  string
		billed int64
		want   error
	}{
		{"WhileOpen", "run1", 0, meter.ErrBillingConflict},
		{"OtherOwner", "run2", 0, meter.ErrBillingBusy},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.CreateBillingIntent(ctx, tt.owner, novIntent("acct", 100, 6000), tt.billed); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	mustUpdate(t, l, first, meter.IntentDone, "ii_1", "")
	t.Run("StaleBilled", func(t *testing.T) {
		if _, err := l.CreateBillingIntent(ctx, "run1", novIntent("acct", 100, 6000), 0); !errors.Is(err, meter.ErrBillingConflict) {
			t.Fatalf("err = %v, want ErrBillingConflict", err)
		}
	})
	second, err := l.CreateBillingIntent(ctx, "run1", novIntent("acct", 100, 6000), 500)
	if err != nil || second.Seq != 2 {
		t.Fatalf("second intent = %+v, %v; want seq 2", second, err)
	}
	mustUpdate(t, l, second, meter.IntentFailed, "", "stripe 400 invalid_request_error")
	wantState(t, l, "acct", meter.BillingState{AccountID: "acct", PeriodStart: billNov, BilledCents: 500, BilledCalls: 5000, LastSeq: 2})
	third, err := l.CreateBillingIntent(ctx, "run1", novIntent("acct", 100, 6000), 500)
	if err != nil || third.Seq != 3 {
		t.Fatalf("third intent = %+v, %v; want seq 3", third, err)
	}
	t.Run("FinalizeWhileOpen", func(t *testing.T) {
		if err := l.FinalizeBillingPeriod(ctx, "run1", "acct", billNov, billDec); !errors.Is(err, meter.ErrBillingConflict) {
			t.Fatalf("err = %v, want ErrBillingConflict", err)
		}
	})
	mustUpdate(t, l, third, meter.IntentDone, "ii_3", "")
	t.Run("FinalizeNeedsLease", func(t *testing.T) {
		if err := l.FinalizeBillingPeriod(ctx, "run2", "acct", billNov, billDec); !errors.Is(err, meter.ErrBillingBusy) {
			t.Fatalf("err = %v, want ErrBillingBusy", err)
		}
	})
	if err := l.FinalizeBillingPeriod(ctx, "run1", "acct", billNov, billDec); err != nil {
		t.Fatal(err)
	}
	wantState(t, l, "acct", meter.BillingState{AccountID: "acct", PeriodStart: billNov, BilledCents: 600,
		BilledCalls: 6000, LastSeq: 3, Final: true, FinalizedAt: billDec})
	t.Run("Final", func(t *testing.T) {
		if _, err := l.CreateBillingIntent(ctx, "run1", novIntent("acct", 1, 6010), 600); !errors.Is(err, meter.ErrPeriodFinal) {
			t.Fatalf("err = %v, want ErrPeriodFinal", err)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		var verr *meter.ValidationError
		if _, err := l.CreateBillingIntent(ctx, "run1", novIntent("acct2", 0, 1), 0); !errors.As(err, &verr) {
			t.Fatalf("err = %v, want a validation error", err)
		}
	})
}

func mustUpdate(tb testing.TB, l *ledger.Ledger, it meter.BillingIntent, status meter.IntentStatus, id, msg string) meter.BillingIntent {
	tb.Helper()
	out, err := l.UpdateBillingIntent(context.Background(), meter.IntentUpdate{AccountID: it.AccountID,
		PeriodStart: it.PeriodStart, Seq: it.Seq, Status: status, StripeID: id, Error: msg, At: billNow.Add(time.Hour)})
	if err != nil {
		tb.Fatalf("update %s to %s: %v", it.IdempotencyKey, status, err)
	}
	return out
}

func wantState(tb testing.TB, l *ledger.Ledger, account string, want meter.BillingState) {
	tb.Helper()
	st, err := l.BillingState(context.Background(), account, billNov)
	if err != nil {
		tb.Fatal(err)
	}
	if st != want {
		tb.Fatalf("state = %+v\nwant    %+v", st, want)
	}
}

func TestLedger_UpdateBillingIntent(t *testing.T) {
	ctx := context.Background()
	l := openBillingLedger(t, "")
	mustLease(t, l, "run", billNow)
	it, err := l.CreateBillingIntent(ctx, "run", novIntent("acct", 500, 5000), 0)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name                string
		status              meter.IntentStatus
		id, msg             string
		wantStatus          meter.IntentStatus
		wantAttempts        int
		wantError, wantID   string
		wantBilled, wantOpn int64
	}{
		{"AttemptStarts", meter.IntentSent, "", "", meter.IntentSent, 1, "", "", 0, 1},
		{"AttemptLost", meter.IntentSent, "", "stripe 500 api_error", meter.IntentSent, 1, "stripe 500 api_error", "", 0, 1},
		{"SecondAttempt", meter.IntentSent, "", "", meter.IntentSent, 2, "stripe 500 api_error", "", 0, 1},
		{"Done", meter.IntentDone, "ii_1", "", meter.IntentDone, 2, "stripe 500 api_error", "ii_1", 500, 0},
		{"DoneAgainChangesNothing", meter.IntentDone, "ii_other", "", meter.IntentDone, 2, "stripe 500 api_error", "ii_1", 500, 0},
		{"FailedAfterDoneChangesNothing", meter.IntentFailed, "", "late", meter.IntentDone, 2, "stripe 500 api_error", "ii_1", 500, 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			got := mustUpdate(t, l, it, s.status, s.id, s.msg)
			if got.Status != s.wantStatus || got.Attempts != s.wantAttempts || got.LastError != s.wantError || got.StripeID != s.wantID {
				t.Fatalf("intent = %+v", got)
			}
			if got.SentAt != billNow.Add(time.Hour) {
				t.Fatalf("sent_at = %v, want the first attempt", got.SentAt)
			}
			st, _ := l.BillingState(ctx, "acct", billNov)
			open, _ := l.OpenBillingIntents(ctx)
			if st.BilledCents != s.wantBilled || int64(len(open)) != s.wantOpn {
				t.Fatalf("billed = %d, open = %d; want %d, %d", st.BilledCents, len(open), s.wantBilled, s.wantOpn)
			}
		})
	}
	t.Run("NotFound", func(t *testing.T) {
		_, err := l.UpdateBillingIntent(ctx, meter.IntentUpdate{AccountID: "acct", PeriodStart: billNov, Seq: 9, Status: meter.IntentSent})
		if !errors.Is(err, meter.ErrIntentNotFound) {
			t.Fatalf("err = %v, want ErrIntentNotFound", err)
		}
	})
	invalid := []meter.IntentUpdate{
		{AccountID: "acct", PeriodStart: billNov, Seq: 1, Status: meter.IntentPending},
		{AccountID: "acct", PeriodStart: billNov, Seq: 1, Status: meter.IntentDone},
	}
	for _, u := range invalid {
		var verr *meter.ValidationError
		if _, err := l.UpdateBillingIntent(ctx, u); !errors.As(err, &verr) {
			t.Fatalf("update %+v: err = %v, want a validation error", u, err)
		}
	}
}

func TestLedger_BillingIntents(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meter.db")
	l := openBillingLedger(t, path)
	mustLease(t, l, "run", billNow)
	oct := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	anchored := time.Date(2026, 11, 17, 8, 30, 0, 0, time.UTC)
	for _, in := range []meter.BillingIntent{
		{AccountID: "b", PeriodStart: billNov, PeriodEnd: billDec, AmountCents: 2, CreatedAt: billNow},
		{AccountID: "a", PeriodStart: oct, PeriodEnd: billNov, AmountCents: 1, CreatedAt: billNow},
		{AccountID: "a", PeriodStart: billNov, PeriodEnd: billDec, AmountCents: 3, CreatedAt: billNow},
		{AccountID: "c", PeriodStart: anchored, PeriodEnd: anchored.AddDate(0, 1, 0), AmountCents: 4, CreatedAt: billNow},
		{AccountID: "a", PeriodStart: billDec, PeriodEnd: billDec.AddDate(0, 1, 0), AmountCents: 5, CreatedAt: billNow},
	} {
		if _, err := l.CreateBillingIntent(ctx, "run", in, 0); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l = openBillingLedger(t, path) // everything survives a reopen
	got, err := l.BillingIntents(ctx, billNov, billDec)
	if err != nil {
		t.Fatal(err)
	}
	var amounts []int64
	for _, it := range got {
		amounts = append(amounts, it.AmountCents)
	}
	if want := []int64{3, 2, 4}; !slices.Equal(amounts, want) {
		t.Fatalf("November amounts = %v, want %v (by period start, then account)", amounts, want)
	}
	open, err := l.OpenBillingIntents(ctx)
	if err != nil || len(open) != 5 {
		t.Fatalf("open intents = %d, %v; want 5", len(open), err)
	}
	t.Run("EmptyLedger", func(t *testing.T) {
		empty := openBillingLedger(t, "")
		got, err := empty.BillingIntents(ctx, billNov, billDec)
		open, oerr := empty.OpenBillingIntents(ctx)
		st, serr := empty.BillingState(ctx, "a", billNov)
		if err != nil || oerr != nil || serr != nil || len(got) != 0 || len(open) != 0 || st.BilledCents != 0 {
			t.Fatalf("empty ledger: %v %v %v %v %v %+v", got, err, open, oerr, serr, st)
		}
	})
}

// A refused billing write must not abort the group commit it shares with
// metered events: the writer's contract is that ops fail only on storage
// errors.
func TestLedger_BillingRefusalKeepsEvents(t *testing.T) {
	ctx := context.Background()
	l := openBillingLedger(t, "")
	const events = 2000
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range events {
			ev := &meter.Event{Time: billNow, PeriodStart: billNov, AccountID: "acct", Endpoint: "/v1/x", Method: "GET",
				Decision: meter.Allowed}
			if err := l.Append(ctx, ev, i == events-1); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 200 {
			if _, err := l.CreateBillingIntent(ctx, "nobody", novIntent("acct", 1, 1), 0); !errors.Is(err, meter.ErrBillingBusy) {
				t.Errorf("err = %v, want ErrBillingBusy", err)
				return
			}
		}
	}()
	wg.Wait()
	c, err := l.Counter(ctx, "acct", billNov)
	if err != nil || c.Calls != events {
		t.Fatalf("counter calls = %d, %v; want %d", c.Calls, err, events)
	}
}
