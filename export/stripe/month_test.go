package stripe_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/meterd/meterd/meter"
)

// Daily runs at 00:00 over a month of growing usage bill exactly the
// period's total, never a negative or a rounded-up delta, and nothing for
// free or enterprise accounts.
func TestService_SimulatedMonth(t *testing.T) {
	const plans = "plans:\n  pro:\n    limit: 1000\n    overage_micros: 1000\n    monthly_price_cents: 2900\n"
	f := newFixture(t, plans, nov1)
	customers := map[string]string{"pro1": "cus_pro1", "pro2": "cus_pro2", "free1": "cus_free1", "ent1": "cus_ent1"}
	for id, plan := range map[string]string{"pro1": "pro", "pro2": "pro", "free1": "free", "ent1": "enterprise"} {
		f.account(id, plan, customers[id])
	}
	f.account("pro-nocus", "pro", "")
	daily := func(account string, day int) int {
		switch account {
		case "pro1":
			return 150 + 37*day // grows every day
		case "pro2":
			return (day * day * 7) % 263 // lumpy, some quiet days
		}
		return 60
	}
	for day := 1; day <= 31; day++ {
		f.clock.Set(nov1.AddDate(0, 0, day-1)) // 00:00: the scheduled run
		rep := f.run()
		if !rep.OK() {
			t.Fatalf("day %d: %s %+v", day, rep.String(), rep.Lines)
		}
		assertSkipped(t, rep, "pro-nocus")
		if day == 31 {
			break // Dec 1: the closing run
		}
		f.clock.Set(nov1.AddDate(0, 0, day-1).Add(13 * time.Hour))
		for _, id := range []string{"pro1", "pro2", "free1", "ent1", "pro-nocus"} {
			f.calls(id, daily(id, day))
		}
	}
	for _, id := range []string{"pro1", "pro2"} {
		c, err := f.led.Counter(context.Background(), id, nov1)
		if err != nil {
			t.Fatal(err)
		}
		items := f.rec.itemsOf(customers[id])
		want := meter.OverageCostCents(c.Calls-1000, 1000)
		if c.Overage != c.Calls-1000 || sumAmounts(items) != want {
			t.Fatalf("%s: %d calls, %d overage; billed %d cents in %d items, want %d", id, c.Calls, c.Overage,
				sumAmounts(items), len(items), want)
		}
		for _, it := range items {
			if it.Amount <= 0 {
				t.Fatalf("%s: item %+v is not positive", id, it)
			}
		}
		if st := f.billed(id); !st.Final || st.BilledCents != want || st.BilledCalls > c.Overage {
			t.Fatalf("%s: state %+v", id, st)
		}
		t.Logf("%s: %d overage calls billed as %d cents in %d items", id, c.Overage, want, len(items))
	}
	for _, id := range []string{"free1", "ent1"} {
		if items := f.rec.itemsOf(customers[id]); len(items) != 0 {
			t.Fatalf("%s was billed: %+v", id, items)
		}
	}
}

func assertSkipped(tb testing.TB, rep meter.BillingReport, account string) {
	tb.Helper()
	for _, l := range rep.Lines {
		if l.AccountID == account {
			if l.Status != "skipped" || l.Reason != "no stripe_customer_id" {
				tb.Fatalf("%s: line %+v, want skipped for no customer", account, l)
			}
			return
		}
	}
	tb.Fatalf("%s is not listed in the report", account)
}

// Overage k spread over several daily runs bills floor(k × 0.1) cents in
// total: fractions of a cent carry from run to run.
func TestService_FractionalCents(t *testing.T) {
	for _, k := range []int{1, 9, 10, 11, 123457} {
		t.Run("k="+strconv.Itoa(k), func(t *testing.T) {
			f := newFixture(t, smallPro, nov1.Add(time.Hour))
			f.account("pro1", "pro", "cus_pro1")
			f.calls("pro1", 10) // the included calls
			chunks := []int{k / 3, k / 3, k - 2*(k/3)}
			for i, n := range chunks {
				f.clock.Set(nov1.AddDate(0, 0, 3*i).Add(time.Hour))
				f.calls("pro1", n)
				f.clock.Set(nov1.AddDate(0, 0, 3*i+1)) // next midnight
				if rep := f.run(); !rep.OK() {
					t.Fatalf("run %d: %s", i, rep.String())
				}
			}
			f.clock.Set(dec1)
			f.run()
			items := f.rec.itemsOf("cus_pro1")
			if got, want := sumAmounts(items), int64(k)/10; got != want {
				t.Fatalf("billed %d cents in %d items, want %d", got, len(items), want)
			}
			if st := f.billed("pro1"); !st.Final || st.BilledCents != int64(k)/10 {
				t.Fatalf("state = %+v", st)
			}
		})
	}
}

// A call recorded into a period after it was finalized is never billed.
func TestService_FinalizedPeriod(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+1234)
	f.clock.Set(dec1)
	rep := f.run()
	if rep.ChargedCents != 123 || len(rep.Lines) != 1 || !rep.Lines[0].Finalized {
		t.Fatalf("closing run: %s %+v", rep.String(), rep.Lines)
	}
	// Late events for November (e.g. a queued batch) reach the ledger.
	ctx := context.Background()
	for range 500 {
		ev := &meter.Event{Time: dec1.Add(-time.Second), PeriodStart: nov1, AccountID: "pro1", Endpoint: "/v1/late",
			Method: "GET", Decision: meter.Allowed, Overage: true}
		if err := f.led.Append(ctx, ev, false); err != nil {
			t.Fatal(err)
		}
	}
	f.sync()
	if c, _ := f.led.Counter(ctx, "pro1", nov1); c.Overage != 1234+500 {
		t.Fatalf("late events not recorded: overage %d", c.Overage)
	}
	f.clock.Add(24 * time.Hour)
	rep = f.run()
	if rep.Charges != 0 || len(f.rec.posts()) != 1 {
		t.Fatalf("finalized period billed again: %s", rep.String())
	}
	if st := f.billed("pro1"); st.BilledCents != 123 || !st.Final {
		t.Fatalf("state = %+v", st)
	}
	t.Run("ExplicitPeriod", func(t *testing.T) {
		rep, err := f.svc.Bill(ctx, meter.BillingOptions{Period: "2026-11"})
		if err != nil || rep.Charges != 0 || len(f.rec.posts()) != 1 {
			t.Fatalf("explicit run on a finalized period: %v %s", err, rep.String())
		}
	})
}
