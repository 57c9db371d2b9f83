package stripe_test

import (
	"context"
	"strconv"
	"strings"
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
	f.clock.Set(dec1.Add(meter.DefaultBillingGrace)) // the grace is over: finalize
	if rep := f.run(); !rep.OK() || rep.Charges != 0 {
		t.Fatalf("finalizing run: %s %+v", rep.String(), rep.Lines)
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
			f.clock.Set(dec1.Add(meter.DefaultBillingGrace))
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

// The closing charge is made at the first run after the period ends; a
// call committed into the period inside the grace is billed by the run
// that finalizes it; one committed after finalization is counted and billed
// by the next run as a late charge that says so, never lost.
func TestService_GraceAndLateCalls(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, smallPro, nov1.Add(time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+1234)
	late := func(n int) {
		for range n {
			ev := &meter.Event{Time: dec1.Add(-time.Second), PeriodStart: nov1, AccountID: "pro1", Endpoint: "/v1/late",
				Method: "GET", Decision: meter.Allowed, Overage: true, OverageMicros: 1000}
			if err := f.led.Append(ctx, ev, false); err != nil {
				t.Fatal(err)
			}
		}
		f.sync()
	}
	f.clock.Set(dec1)
	rep := f.run()
	if rep.ChargedCents != 123 || rep.Lines[0].Finalized || f.billed("pro1").Final {
		t.Fatalf("closing run: %s %+v", rep.String(), rep.Lines)
	}
	// Inside the grace: an async commit for November lands.
	f.clock.Set(dec1.Add(30 * time.Minute))
	late(100)
	f.clock.Set(dec1.Add(meter.DefaultBillingGrace))
	rep = f.run()
	if rep.ChargedCents != 10 || !f.billed("pro1").Final {
		t.Fatalf("finalizing run: %s %+v, state %+v", rep.String(), rep.Lines, f.billed("pro1"))
	}
	// After finalization: counted, reported, billed next run as late.
	late(500)
	if v, err := f.led.Verify(ctx); err != nil || !v.OK || len(v.LateCalls) != 1 || v.LateCalls[0].Calls != 500 {
		t.Fatalf("verify before the late charge: %v %+v", err, v)
	}
	f.clock.Add(24 * time.Hour)
	prev, err := f.svc.Preview(ctx)
	if err != nil || prev.ChargedCents != 50 || !prev.Lines[0].Late {
		t.Fatalf("preview: %v %s %+v", err, prev.String(), prev.Lines)
	}
	rep = f.run()
	if rep.ChargedCents != 50 || !rep.OK() {
		t.Fatalf("late run: %s %+v", rep.String(), rep.Lines)
	}
	items := f.rec.itemsOf("cus_pro1")
	if len(items) != 3 || sumAmounts(items) != 183 || !strings.Contains(items[2].Description, "after the period") {
		t.Fatalf("items = %+v", items)
	}
	if st := f.billed("pro1"); st.BilledCents != 183 || !st.Final || st.LateCalls != 500 {
		t.Fatalf("state = %+v", st)
	}
	if v := metricValue(t, f.reg, "meterd_billing_late_calls_total"); v != 500 {
		t.Fatalf("late_calls_total = %v", v)
	}
	if v, err := f.led.Verify(ctx); err != nil || !v.OK || len(v.LateCalls) != 0 {
		t.Fatalf("verify after the late charge: %v %+v", err, v)
	}
	if rep := f.run(); rep.Charges != 0 || len(f.rec.posts()) != 3 {
		t.Fatalf("billed again: %s", rep.String())
	}
}
