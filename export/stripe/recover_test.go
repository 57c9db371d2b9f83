package stripe_test

import (
	"context"
	"errors"
	"testing"
	"time"

	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/meter"
)

// waitFor polls cond for up to 10 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A run renews its short lease while it lives, so a long run keeps it
// however long Stripe takes, and no second run can start meanwhile.
func TestService_LeaseRenewedWhileRunLives(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	const ttl = 300 * time.Millisecond
	svc, _ := f.service(billing.Config{LeaseTTL: ttl, RequestTimeout: 20 * time.Second})
	other, _ := f.service(billing.Config{LeaseTTL: ttl})
	f.rec.holdPosts()
	done := make(chan error, 1)
	go func() {
		_, err := svc.Run(context.Background())
		done <- err
	}()
	<-f.rec.entered
	// Half a lease at a time, to four times its length: each step finds
	// the lease renewed by the heartbeat since the previous one.
	for range 8 {
		time.Sleep(ttl)
		f.clock.Add(ttl / 2)
		if _, err := other.Run(context.Background()); !errors.Is(err, meter.ErrBillingBusy) {
			t.Fatalf("second run while the first lives: %v", err)
		}
	}
	f.rec.releasePosts()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rep, err := other.Run(context.Background()); err != nil || rep.Charges != 0 {
		t.Fatalf("run after: %v %s", err, rep.String())
	}
}

// A run that dies mid-charge leaves an open intent and a lease nobody
// renews: the retry loop of the next process takes the lease over once it
// lapses (seconds, not minutes) and resolves the intent with its own key.
func TestService_RetryLoopAfterCrash(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	billing.SetAfterStripeAcceptFn(f.svc, func() error { return errCrash })
	if _, err := f.svc.Run(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("Run = %v, want the crash", err)
	}
	f.restart()
	svc, _ := f.service(billing.Config{RetryInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); svc.RetryLoop(ctx) }()
	defer func() { cancel(); <-stopped }()
	time.Sleep(200 * time.Millisecond)
	if open, _ := f.led.OpenBillingIntents(context.Background()); len(open) != 1 {
		t.Fatalf("open intents while the dead run's lease holds: %d", len(open))
	}
	f.clock.Add(billing.DefaultLeaseTTL) // the dead run's lease lapses
	waitFor(t, "the open intent to resolve", func() bool {
		open, _ := f.led.OpenBillingIntents(context.Background())
		return len(open) == 0
	})
	if items := f.rec.itemsOf("cus_pro1"); len(items) != 1 || items[0].Amount != 500 {
		t.Fatalf("items = %+v", items)
	}
	if posts := f.rec.posts(); len(posts) != 2 || posts[0].Key != posts[1].Key {
		t.Fatalf("posts = %+v", posts)
	}
}

// A scheduled run missed while meterd was down runs at start-up.
func TestService_ScheduleCatchesUpMissedRun(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+1000)
	f.clock.Set(nov1.AddDate(0, 0, 2)) // Nov 3, 00:00: a scheduled run
	if rep := f.run(); rep.ChargedCents != 100 {
		t.Fatalf("run: %s", rep.String())
	}
	last, err := f.led.LastBillingRun(context.Background())
	if err != nil || !last.Equal(nov1.AddDate(0, 0, 2)) {
		t.Fatalf("last run = %v %v", last, err)
	}
	f.clock.Set(nov1.AddDate(0, 0, 2).Add(13 * time.Hour))
	f.calls("pro1", 2000)
	// Down over Nov 4, 00:00; back at 05:00.
	f.clock.Set(nov1.AddDate(0, 0, 3).Add(5 * time.Hour))
	f.restart()
	ctx, cancel := context.WithCancel(context.Background())
	done, err := f.svc.Schedule(ctx, billing.DefaultSchedule)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the catch-up run", func() bool { return sumAmounts(f.rec.itemsOf("cus_pro1")) == 300 })
	cancel()
	<-done
	if last, _ := f.led.LastBillingRun(context.Background()); !last.Equal(nov1.AddDate(0, 0, 3).Add(5 * time.Hour)) {
		t.Fatalf("last run after catch-up = %v", last)
	}
	// Nothing was missed now: a restart does not run again.
	f.restart()
	ctx, cancel = context.WithCancel(context.Background())
	done, _ = f.svc.Schedule(ctx, billing.DefaultSchedule)
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-done
	if n := len(f.rec.posts()); n != 2 {
		t.Fatalf("%d posts, want 2", n)
	}
}

// A ledger that never billed gets a baseline at the scheduler's first
// start, so a slot missed after that is caught up too.
func TestService_ScheduleBaseline(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+1000)
	ctx, cancel := context.WithCancel(context.Background())
	done, _ := f.svc.Schedule(ctx, billing.DefaultSchedule)
	waitFor(t, "the baseline", func() bool {
		last, _ := f.led.LastBillingRun(context.Background())
		return last.Equal(nov1.Add(36 * time.Hour))
	})
	cancel()
	<-done
	if n := len(f.rec.posts()); n != 0 {
		t.Fatalf("the first start charged: %d posts", n)
	}
	f.clock.Set(nov1.AddDate(0, 0, 3).Add(time.Hour)) // Nov 3 and 4, 00:00 missed
	f.restart()
	ctx, cancel = context.WithCancel(context.Background())
	done, _ = f.svc.Schedule(ctx, billing.DefaultSchedule)
	waitFor(t, "the catch-up run", func() bool { return sumAmounts(f.rec.itemsOf("cus_pro1")) == 100 })
	cancel()
	<-done
}
