// Package billingtest is the conformance suite of meter.BillingStore: one
// set of cases every implementation must pass (the bbolt ledger and the
// cluster's Postgres store), so the billing run can rely on the same
// behaviour whichever one it is given. It holds tests only, never
// production code.
package billingtest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/meter"
)

// Times the suite uses: a November period, a moment inside it.
var (
	Nov = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	Dec = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	Now = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	TTL = time.Minute
)

// Factory returns a fresh, empty store that lives until the test ends.
type Factory func(t *testing.T) meter.BillingStore

// RunStoreSuite runs every case against stores made by open.
func RunStoreSuite(t *testing.T, open Factory) {
	t.Run("Lease", func(t *testing.T) { testLease(t, open(t)) })
	t.Run("LeaseRace", func(t *testing.T) { testLeaseRace(t, open(t)) })
	t.Run("IntentLifecycle", func(t *testing.T) { testIntentLifecycle(t, open(t)) })
	t.Run("IntentNeedsLease", func(t *testing.T) { testIntentNeedsLease(t, open(t)) })
	t.Run("FailedIsNotBilled", func(t *testing.T) { testFailed(t, open(t)) })
	t.Run("Finalize", func(t *testing.T) { testFinalize(t, open(t)) })
	t.Run("Listings", func(t *testing.T) { testListings(t, open(t)) })
	t.Run("Adopt", func(t *testing.T) { testAdopt(t, open(t)) })
	t.Run("LastRun", func(t *testing.T) { testLastRun(t, open(t)) })
}

// Intent is a November intent of account for cents, covering calls.
func Intent(account string, cents, calls int64) meter.BillingIntent {
	return meter.BillingIntent{AccountID: account, CustomerID: "cus_" + account, PeriodStart: Nov, PeriodEnd: Dec,
		AmountCents: cents, Currency: "usd", Calls: calls, CallsCovered: calls, CreatedAt: Now}
}

func mustLease(t *testing.T, s meter.BillingStore, owner string) {
	t.Helper()
	if _, err := s.AcquireBillingLease(context.Background(), owner, Now, TTL); err != nil {
		t.Fatalf("acquire lease for %s: %v", owner, err)
	}
}

func mustCreate(t *testing.T, s meter.BillingStore, owner string, in meter.BillingIntent, billed int64) meter.BillingIntent {
	t.Helper()
	it, err := s.CreateBillingIntent(context.Background(), owner, in, billed)
	if err != nil {
		t.Fatalf("create intent: %v", err)
	}
	return it
}

func mustUpdate(t *testing.T, s meter.BillingStore, it meter.BillingIntent, status meter.IntentStatus, stripeID string) meter.BillingIntent {
	t.Helper()
	out, err := s.UpdateBillingIntent(context.Background(), meter.IntentUpdate{AccountID: it.AccountID,
		PeriodStart: it.PeriodStart, Seq: it.Seq, Status: status, StripeID: stripeID, At: Now.Add(time.Second)})
	if err != nil {
		t.Fatalf("update intent to %s: %v", status, err)
	}
	return out
}

func testLease(t *testing.T, s meter.BillingStore) {
	ctx := context.Background()
	steps := []struct {
		name    string
		owner   string
		at      time.Duration
		release bool
		busy    bool
	}{
		{name: "free", owner: "a"},
		{name: "other waits", owner: "b", at: time.Second, busy: true},
		{name: "renewal", owner: "a", at: 30 * time.Second},
		{name: "still held after renewal", owner: "b", at: 80 * time.Second, busy: true},
		{name: "taken over once expired", owner: "b", at: 91 * time.Second},
		{name: "old holder refused", owner: "a", at: 92 * time.Second, busy: true},
		{name: "release by a non-holder is a no-op", owner: "a", at: 93 * time.Second, release: true},
		{name: "still b's", owner: "a", at: 94 * time.Second, busy: true},
		{name: "released by b", owner: "b", at: 95 * time.Second, release: true},
		{name: "free again", owner: "a", at: 96 * time.Second},
	}
	for _, st := range steps {
		if st.release {
			if err := s.ReleaseBillingLease(ctx, st.owner); err != nil {
				t.Fatalf("%s: release: %v", st.name, err)
			}
			continue
		}
		l, err := s.AcquireBillingLease(ctx, st.owner, Now.Add(st.at), TTL)
		switch {
		case st.busy && !errors.Is(err, meter.ErrBillingBusy):
			t.Fatalf("%s: got %v, want ErrBillingBusy", st.name, err)
		case st.busy && l.Owner == st.owner:
			t.Fatalf("%s: busy answer names %q as holder", st.name, l.Owner)
		case !st.busy && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case !st.busy && (l.Owner != st.owner || !l.Expires.Equal(Now.Add(st.at).Add(TTL))):
			t.Fatalf("%s: lease %+v", st.name, l)
		}
	}
	if _, err := s.AcquireBillingLease(ctx, "", Now, TTL); err == nil {
		t.Fatal("a lease without an owner was granted")
	}
}

// testLeaseRace: many owners at once, exactly one wins.
func testLeaseRace(t *testing.T, s meter.BillingStore) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		wg.Go(func() {
			_, err := s.AcquireBillingLease(context.Background(), "owner"+string(rune('a'+i)), Now, TTL)
			if err != nil && !errors.Is(err, meter.ErrBillingBusy) {
				t.Errorf("acquire: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d owners took the lease at once, want 1", won)
	}
}

func testIntentLifecycle(t *testing.T, s meter.BillingStore) {
	ctx := context.Background()
	mustLease(t, s, "run")
	it := mustCreate(t, s, "run", Intent("acme", 500, 5000), 0)
	if it.Seq != 1 || it.Status != meter.IntentPending || it.IdempotencyKey != meter.IntentKey("acme", Nov, 1) {
		t.Fatalf("created %+v", it)
	}
	if _, err := s.CreateBillingIntent(ctx, "run", Intent("acme", 100, 6000), 0); !errors.Is(err, meter.ErrBillingConflict) {
		t.Fatalf("second intent while one is open: %v, want ErrBillingConflict", err)
	}
	open, err := s.OpenBillingIntents(ctx)
	if err != nil || len(open) != 1 || open[0].IdempotencyKey != it.IdempotencyKey {
		t.Fatalf("open intents %+v, %v", open, err)
	}
	sent := mustUpdate(t, s, it, meter.IntentSent, "")
	if sent.Status != meter.IntentSent || sent.Attempts != 1 || sent.SentAt.IsZero() {
		t.Fatalf("sent %+v", sent)
	}
	done := mustUpdate(t, s, it, meter.IntentDone, "ii_1")
	if done.Status != meter.IntentDone || done.StripeID != "ii_1" {
		t.Fatalf("done %+v", done)
	}
	again := mustUpdate(t, s, it, meter.IntentFailed, "")
	if again.Status != meter.IntentDone {
		t.Fatalf("a done intent changed to %s", again.Status)
	}
	st, err := s.BillingState(ctx, "acme", Nov)
	if err != nil || st.BilledCents != 500 || st.BilledCalls != 5000 || st.OpenSeq != 0 || st.LastSeq != 1 {
		t.Fatalf("state %+v, %v", st, err)
	}
	if open, _ := s.OpenBillingIntents(ctx); len(open) != 0 {
		t.Fatalf("open after done: %+v", open)
	}
	if _, err := s.CreateBillingIntent(ctx, "run", Intent("acme", 100, 6000), 0); !errors.Is(err, meter.ErrBillingConflict) {
		t.Fatalf("intent computed from stale billed cents: %v, want ErrBillingConflict", err)
	}
	if next := mustCreate(t, s, "run", Intent("acme", 100, 6000), 500); next.Seq != 2 {
		t.Fatalf("next seq %d", next.Seq)
	}
	_, err = s.UpdateBillingIntent(ctx, meter.IntentUpdate{AccountID: "acme", PeriodStart: Nov, Seq: 9, Status: meter.IntentSent, At: Now})
	if !errors.Is(err, meter.ErrIntentNotFound) {
		t.Fatalf("unknown intent: %v, want ErrIntentNotFound", err)
	}
}

func testIntentNeedsLease(t *testing.T, s meter.BillingStore) {
	ctx := context.Background()
	if _, err := s.CreateBillingIntent(ctx, "run", Intent("acme", 500, 5000), 0); !errors.Is(err, meter.ErrBillingBusy) {
		t.Fatalf("without the lease: %v, want ErrBillingBusy", err)
	}
	mustLease(t, s, "first")
	if _, err := s.AcquireBillingLease(ctx, "second", Now.Add(2*TTL), TTL); err != nil {
		t.Fatalf("take over: %v", err)
	}
	if _, err := s.CreateBillingIntent(ctx, "first", Intent("acme", 500, 5000), 0); !errors.Is(err, meter.ErrBillingBusy) {
		t.Fatalf("after a takeover: %v, want ErrBillingBusy", err)
	}
	if err := s.FinalizeBillingPeriod(ctx, "first", "acme", Nov, Now); !errors.Is(err, meter.ErrBillingBusy) {
		t.Fatalf("finalize after a takeover: %v, want ErrBillingBusy", err)
	}
	if open, _ := s.OpenBillingIntents(ctx); len(open) != 0 {
		t.Fatalf("a refused write left intents: %+v", open)
	}
}

func testFailed(t *testing.T, s meter.BillingStore) {
	ctx := context.Background()
	mustLease(t, s, "run")
	it := mustCreate(t, s, "run", Intent("acme", 500, 5000), 0)
	mustUpdate(t, s, it, meter.IntentFailed, "")
	st, err := s.BillingState(ctx, "acme", Nov)
	if err != nil || st.BilledCents != 0 || st.OpenSeq != 0 {
		t.Fatalf("state after a failure %+v, %v", st, err)
	}
	if next := mustCreate(t, s, "run", Intent("acme", 500, 5000), 0); next.Seq != 2 {
		t.Fatalf("retry of a failed amount has seq %d", next.Seq)
	}
}

func testFinalize(t *testing.T, s meter.BillingStore) {
	ctx := context.Background()
	mustLease(t, s, "run")
	it := mustCreate(t, s, "run", Intent("acme", 500, 5000), 0)
	if err := s.FinalizeBillingPeriod(ctx, "run", "acme", Nov, Now); !errors.Is(err, meter.ErrBillingConflict) {
		t.Fatalf("finalize with an open intent: %v, want ErrBillingConflict", err)
	}
	mustUpdate(t, s, it, meter.IntentDone, "ii_1")
	if err := s.FinalizeBillingPeriod(ctx, "run", "acme", Nov, Dec.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	st, err := s.BillingState(ctx, "acme", Nov)
	if err != nil || !st.Final || !st.FinalizedAt.Equal(Dec.Add(2*time.Hour)) {
		t.Fatalf("state %+v, %v", st, err)
	}
	if _, err := s.CreateBillingIntent(ctx, "run", Intent("acme", 1, 5010), 500); !errors.Is(err, meter.ErrPeriodFinal) {
		t.Fatalf("intent into a final period: %v, want ErrPeriodFinal", err)
	}
	late := Intent("acme", 1, 5010)
	late.Late = true
	if it := mustCreate(t, s, "run", late, 500); !it.Late || it.Seq != 2 {
		t.Fatalf("late intent %+v", it)
	}
}

func testListings(t *testing.T, s meter.BillingStore) {
	ctx := context.Background()
	mustLease(t, s, "run")
	for _, acct := range []string{"b", "a", "ab"} {
		mustUpdate(t, s, mustCreate(t, s, "run", Intent(acct, 10, 100), 0), meter.IntentDone, "ii_"+acct)
	}
	mustCreate(t, s, "run", Intent("a", 20, 300), 10)
	dec := Intent("a", 30, 100)
	dec.PeriodStart, dec.PeriodEnd = Dec, Dec.AddDate(0, 1, 0)
	mustCreate(t, s, "run", dec, 0)

	got, err := s.BillingIntents(ctx, Nov, Dec)
	want := []string{"a/1", "a/2", "ab/1", "b/1"}
	if err != nil || len(got) != len(want) {
		t.Fatalf("November intents %+v, %v", got, err)
	}
	for i, it := range got {
		if k := it.AccountID + "/" + string(rune('0'+it.Seq)); k != want[i] {
			t.Fatalf("intent %d is %s, want %s (order: period, account, seq)", i, k, want[i])
		}
	}
	per, err := s.PeriodIntents(ctx, "a", Nov)
	if err != nil || len(per) != 2 || per[0].Seq != 1 || per[1].Seq != 2 {
		t.Fatalf("period intents %+v, %v", per, err)
	}
	open, err := s.OpenBillingIntents(ctx)
	if err != nil || len(open) != 2 || !open[0].PeriodStart.Equal(Nov) || !open[1].PeriodStart.Equal(Dec) {
		t.Fatalf("open intents %+v, %v", open, err)
	}
}

func testAdopt(t *testing.T, s meter.BillingStore) {
	ctx := context.Background()
	found := Intent("acme", 500, 5000)
	found.Seq, found.Status, found.StripeID, found.Adopted = 3, meter.IntentDone, "ii_found", true
	found.IdempotencyKey = meter.IntentKey("acme", Nov, 3)
	if _, err := s.AdoptStripeCharges(ctx, "run", "acme", Nov, []meter.BillingIntent{found}, 1); !errors.Is(err, meter.ErrBillingBusy) {
		t.Fatalf("adopt without the lease: %v, want ErrBillingBusy", err)
	}
	mustLease(t, s, "run")
	for range 2 { // adopting the same item twice counts it once
		st, err := s.AdoptStripeCharges(ctx, "run", "acme", Nov, []meter.BillingIntent{found}, 1)
		if err != nil || st.BilledCents != 500 || st.LastSeq != 3 || st.Epoch != 1 {
			t.Fatalf("after adoption %+v, %v", st, err)
		}
	}
	if next := mustCreate(t, s, "run", Intent("acme", 1, 5010), 500); next.Seq != 4 {
		t.Fatalf("next seq after adoption %d, want 4", next.Seq)
	}
}

func testLastRun(t *testing.T, s meter.BillingStore) {
	ctx := context.Background()
	if at, err := s.LastBillingRun(ctx); err != nil || !at.IsZero() {
		t.Fatalf("fresh store: %v, %v", at, err)
	}
	for _, slot := range []time.Time{Now, Now.Add(-time.Hour)} {
		if err := s.RecordBillingRun(ctx, slot); err != nil {
			t.Fatal(err)
		}
	}
	if at, err := s.LastBillingRun(ctx); err != nil || !at.Equal(Now) {
		t.Fatalf("last run %v, %v; want %v (it only moves forward)", at, err, Now)
	}
}

// BenchCharge measures what one charge costs the store: the intent is
// created under the lease, marked sent, then done, as a billing run does
// for each account period it charges.
func BenchCharge(b *testing.B, s meter.BillingStore) {
	ctx := context.Background()
	if _, err := s.AcquireBillingLease(ctx, "bench", Now, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		in := Intent("acct"+strconv.Itoa(i), 500, 5000)
		it, err := s.CreateBillingIntent(ctx, "bench", in, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, st := range []meter.IntentStatus{meter.IntentSent, meter.IntentDone} {
			if _, err := s.UpdateBillingIntent(ctx, meter.IntentUpdate{AccountID: it.AccountID, PeriodStart: Nov,
				Seq: it.Seq, Status: st, StripeID: "ii_bench", At: Now}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
