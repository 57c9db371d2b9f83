package meter_test

import (
	"errors"
	"testing"
	"time"

	"github.com/meterd/meterd/meter"
)

func utc(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }

var (
	pro        = meter.Plan{Name: "pro", Limit: 100000, OverageMicros: 1000, MonthlyPriceCents: 2900}
	free       = meter.Plan{Name: "free", Limit: 1000, Hard: true}
	enterprise = meter.Plan{Name: "enterprise", PricePerAccount: true}
	growth     = meter.Plan{Name: "growth", Limit: 100000, OverageMicros: 2500, MonthlyPriceCents: 4900}
	scale      = meter.Plan{Name: "scale", Limit: 500000, Hard: true, MonthlyPriceCents: 9900}
	tiny       = meter.Plan{Name: "tiny", Limit: 50000, OverageMicros: 3000, MonthlyPriceCents: 900}
)

// Which period a call belongs to, and so which period a charge names, at
// month ends and in leap years, with and without an anchor.
func TestBilling_PeriodOfCharge(t *testing.T) {
	tests := []struct {
		name       string
		anchor, at time.Time
		start, end time.Time
	}{
		{"CalendarLastInstant", time.Time{}, utc(2026, 11, 30, 23).Add(59*time.Minute + 59*time.Second), utc(2026, 11, 1, 0), utc(2026, 12, 1, 0)},
		{"CalendarMidnightIsNext", time.Time{}, utc(2026, 12, 1, 0), utc(2026, 12, 1, 0), utc(2027, 1, 1, 0)},
		{"CalendarLeapFebruary", time.Time{}, utc(2028, 2, 29, 12), utc(2028, 2, 1, 0), utc(2028, 3, 1, 0)},
		{"Anchor31ToFeb28", utc(2026, 1, 31, 9), utc(2026, 2, 15, 0), utc(2026, 1, 31, 9), utc(2026, 2, 28, 9)},
		{"Anchor31ToFeb29Leap", utc(2028, 1, 31, 9), utc(2028, 2, 29, 10), utc(2028, 2, 29, 9), utc(2028, 3, 31, 9)},
		{"Anchor31BackTo31", utc(2026, 1, 31, 9), utc(2026, 3, 30, 0), utc(2026, 2, 28, 9), utc(2026, 3, 31, 9)},
		{"Anchor30InFebruary", utc(2026, 1, 30, 0), utc(2026, 3, 1, 0), utc(2026, 2, 28, 0), utc(2026, 3, 30, 0)},
		{"Anchor29LeapToCommon", utc(2028, 2, 29, 0), utc(2029, 2, 28, 12), utc(2029, 2, 28, 0), utc(2029, 3, 29, 0)},
		{"AnchorYearEnd", utc(2026, 12, 31, 23), utc(2027, 1, 1, 0), utc(2026, 12, 31, 23), utc(2027, 1, 31, 23)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := meter.PeriodAt(tt.anchor, tt.at)
			if !p.Start.Equal(tt.start) || !p.End.Equal(tt.end) {
				t.Fatalf("PeriodAt(%v, %v) = [%v, %v), want [%v, %v)", tt.anchor, tt.at, p.Start, p.End, tt.start, tt.end)
			}
		})
	}
}

// Grace edges: the closing charge is due from the end, finalization only
// once the grace is over, to the nanosecond.
func TestPeriodClose(t *testing.T) {
	feb := meter.PeriodAt(time.Time{}, utc(2028, 2, 10, 0)) // leap February
	anch := meter.PeriodAt(utc(2026, 1, 31, 9), utc(2026, 2, 10, 0))
	tests := []struct {
		name  string
		p     meter.Period
		now   time.Time
		grace time.Duration
		want  meter.PeriodCloseState
	}{
		{"Inside", feb, utc(2028, 2, 29, 23), time.Hour, meter.PeriodOpen},
		{"LastNanosecond", feb, feb.End.Add(-1), time.Hour, meter.PeriodOpen},
		{"AtEnd", feb, feb.End, time.Hour, meter.PeriodClosing},
		{"GraceLastNanosecond", feb, feb.End.Add(time.Hour - 1), time.Hour, meter.PeriodClosing},
		{"GraceOver", feb, feb.End.Add(time.Hour), time.Hour, meter.PeriodFinalizable},
		{"ZeroGrace", feb, feb.End, 0, meter.PeriodFinalizable},
		{"NegativeGraceIsZero", feb, feb.End, -time.Hour, meter.PeriodFinalizable},
		{"AnchoredFeb28", anch, utc(2026, 2, 28, 9), time.Hour, meter.PeriodClosing},
		{"AnchoredFeb28Final", anch, utc(2026, 2, 28, 10), time.Hour, meter.PeriodFinalizable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := meter.PeriodClose(tt.p, tt.now, tt.grace); got != tt.want {
				t.Fatalf("PeriodClose = %v, want %v", got, tt.want)
			}
		})
	}
}

// The counting rule with plan changes inside a period: each overage call
// keeps the price of the plan in force when it was made.
func TestCounter_PlanChangesInsidePeriod(t *testing.T) {
	type step struct {
		plan  meter.Plan
		calls int
	}
	tests := []struct {
		name                  string
		steps                 []step
		calls, overage        int64
		micros, cents, denied int64
	}{
		{"ProOnly", []step{{pro, 105000}}, 105000, 5000, 5_000_000, 500, 0},
		{"ProThenFree", []step{{pro, 103000}, {free, 10}}, 103000, 3000, 3_000_000, 300, 10},
		{"ProThenEnterprise", []step{{pro, 103000}, {enterprise, 5000}}, 108000, 3000, 3_000_000, 300, 0},
		{"ProThenGrowth", []step{{pro, 103000}, {growth, 1000}}, 104000, 4000, 5_500_000, 550, 0},
		{"ProThenScaleHard", []step{{pro, 101000}, {scale, 1000}}, 102000, 1000, 1_000_000, 100, 0},
		{"TinyThenPro", []step{{tiny, 60000}, {pro, 50000}}, 110000, 20000, 40_000_000, 4000, 0},
		{"FreeThenPro", []step{{free, 1500}, {pro, 99500}}, 100500, 500, 500_000, 50, 500},
		{"FractionCarries", []step{{growth, 100003}}, 100003, 3, 7500, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c meter.Counter
			for _, s := range tt.steps {
				for range s.calls {
					countCall(&c, s.plan)
				}
			}
			if c.Calls != tt.calls || c.Overage != tt.overage || c.OverageMicros != tt.micros || c.Denied != tt.denied {
				t.Fatalf("counter = %+v", c)
			}
			if got := meter.BillableCents(c, tt.steps[len(tt.steps)-1].plan); got != tt.cents {
				t.Fatalf("billable = %d, want %d", got, tt.cents)
			}
		})
	}
}

// countCall is what the meter does for one call on plan: the check of a
// hard limit, then the counting rule.
func countCall(c *meter.Counter, plan meter.Plan) {
	ev := &meter.Event{Decision: meter.Allowed}
	if plan.Hard && c.Calls >= plan.Limit {
		ev.Decision = meter.Denied
	} else {
		meter.StampOverage(ev, plan, meter.IsOverageCall(plan, c.Calls+1))
	}
	c.Count(ev)
}

// Overage recorded before calls carried their price is priced at the
// account's plan; calls after the upgrade keep their own price.
func TestCounter_LegacyFallback(t *testing.T) {
	c := meter.Counter{Calls: 105000, Overage: 5000, UnpricedOverage: 5000} // a first-layout counter
	if got := meter.BillableCents(c, pro); got != 500 {
		t.Fatalf("legacy counter billable = %d", got)
	}
	if got := meter.BillableCents(c, free); got != 0 {
		t.Fatalf("legacy counter on a plan without a price = %d", got)
	}
	// Upgraded mid-period: 3,000 unpriced, then 2,000 priced at growth's rate.
	c = meter.Counter{Calls: 103000, Overage: 3000, UnpricedOverage: 3000}
	for range 2000 {
		countCall(&c, growth)
	}
	if c.Overage != 5000 || c.UnpricedOverage != 3000 || meter.BillableCents(c, pro) != 300+500 {
		t.Fatalf("mixed counter %+v billable %d", c, meter.BillableCents(c, pro))
	}
	var v1 meter.Counter
	v1.Count(&meter.Event{Decision: meter.Allowed, Overage: true, OverageMicros: -1}) // a first-layout event
	if v1.UnpricedOverage != 1 || v1.OverageMicros != 0 {
		t.Fatalf("unpriced event counted as %+v", v1)
	}
}

func TestDueCents(t *testing.T) {
	tests := []struct {
		name                 string
		billable, billed, op int64
		want                 int64
	}{
		{"Nothing", 0, 0, 0, 0},
		{"First", 300, 0, 0, 300},
		{"Rest", 500, 300, 0, 200},
		{"OpenIntentCounts", 500, 300, 200, 0},
		{"BilledMoreNeverNegative", 300, 500, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := meter.DueCents(tt.billable, meter.BillingState{BilledCents: tt.billed}, tt.op); got != tt.want {
				t.Fatalf("DueCents = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestSchedulePlanChange(t *testing.T) {
	nov := meter.PeriodAt(time.Time{}, utc(2026, 11, 15, 0))
	tests := []struct {
		name     string
		from, to meter.Plan
		now      bool
		want     meter.PlanChange
	}{
		{"FreeToProUpgrade", free, pro, false, meter.PlanChange{Now: true}},
		{"ProToFreeAtPeriodEnd", pro, free, false, meter.PlanChange{At: nov.End}},
		{"ProToFreeNow", pro, free, true, meter.PlanChange{Now: true}},
		{"ProToEnterprise", pro, enterprise, false, meter.PlanChange{Now: true}},
		{"EnterpriseToPro", enterprise, pro, false, meter.PlanChange{At: nov.End}},
		{"ProToGrowthSameLimit", pro, growth, false, meter.PlanChange{Now: true}},
		{"ProToTinyFewerCalls", pro, tiny, false, meter.PlanChange{At: nov.End}},
		{"ProToScaleMoreButHard", pro, scale, false, meter.PlanChange{Now: true}},
		{"ScaleToPro", scale, pro, false, meter.PlanChange{At: nov.End}},
		{"SoftToHardSameLimit", growth, meter.Plan{Name: "h", Limit: 100000, Hard: true}, false, meter.PlanChange{At: nov.End}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := meter.SchedulePlanChange(tt.from, tt.to, nov, tt.now); got != tt.want {
				t.Fatalf("SchedulePlanChange = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The intent state machine: what may be written, and how an update moves
// an intent and its period.
func TestIntentRules(t *testing.T) {
	t.Run("CheckNewIntent", func(t *testing.T) {
		tests := []struct {
			name   string
			st     meter.BillingState
			late   bool
			billed int64
			want   error
		}{
			{"Fresh", meter.BillingState{}, false, 0, nil},
			{"StaleBilled", meter.BillingState{BilledCents: 300}, false, 0, meter.ErrBillingConflict},
			{"OpenIntent", meter.BillingState{OpenSeq: 2, LastSeq: 2}, false, 0, meter.ErrBillingConflict},
			{"Final", meter.BillingState{Final: true}, false, 0, meter.ErrPeriodFinal},
			{"FinalLate", meter.BillingState{Final: true, BilledCents: 300}, true, 300, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := meter.CheckNewIntent(tt.st, meter.BillingIntent{Late: tt.late}, tt.billed)
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
			})
		}
	})
	t.Run("ApplyIntentUpdate", func(t *testing.T) {
		at := utc(2026, 11, 3, 0)
		base := meter.NewIntent(meter.BillingIntent{AccountID: "a", PeriodStart: utc(2026, 11, 1, 0), AmountCents: 200,
			Calls: 2000, CallsCovered: 5000, CreatedAt: at}, 2)
		tests := []struct {
			name      string
			start     meter.IntentStatus
			late      bool
			u         meter.IntentUpdate
			status    meter.IntentStatus
			billed    int64
			open      uint32
			lateCalls int64
			moved     bool
		}{
			{"Sent", meter.IntentPending, false, meter.IntentUpdate{Status: meter.IntentSent, At: at}, meter.IntentSent, 300, 2, 0, true},
			{"Done", meter.IntentSent, false, meter.IntentUpdate{Status: meter.IntentDone, StripeID: "ii", At: at}, meter.IntentDone, 500, 0, 0, true},
			{"DoneLate", meter.IntentSent, true, meter.IntentUpdate{Status: meter.IntentDone, StripeID: "ii", At: at}, meter.IntentDone, 500, 0, 2000, true},
			{"Failed", meter.IntentSent, false, meter.IntentUpdate{Status: meter.IntentFailed, At: at}, meter.IntentFailed, 300, 0, 0, true},
			{"DoneIsFinal", meter.IntentDone, false, meter.IntentUpdate{Status: meter.IntentFailed, At: at}, meter.IntentDone, 300, 2, 0, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				it, st := base, meter.BillingState{BilledCents: 300, LastSeq: 2, OpenSeq: 2}
				it.Status, it.Late = tt.start, tt.late
				moved := meter.ApplyIntentUpdate(&it, &st, tt.u)
				if moved != tt.moved || it.Status != tt.status || st.BilledCents != tt.billed || st.OpenSeq != tt.open || st.LateCalls != tt.lateCalls {
					t.Fatalf("moved %v intent %s state %+v", moved, it.Status, st)
				}
			})
		}
	})
}

// Reconciliation after a restore or a lost key: what Stripe holds and the
// ledger lacks is adopted; what both hold is not counted twice.
func TestReconcile(t *testing.T) {
	now, nov := utc(2026, 11, 5, 0), utc(2026, 11, 1, 0)
	done := func(seq uint32, cents int64) meter.BillingIntent {
		return meter.BillingIntent{AccountID: "a", PeriodStart: nov, Seq: seq, AmountCents: cents, Status: meter.IntentDone}
	}
	item := func(seq uint32, cents int64) meter.StripeCharge {
		return meter.StripeCharge{StripeID: "ii", AccountID: "a", PeriodStart: nov, Seq: seq, AmountCents: cents}
	}
	tests := []struct {
		name                 string
		intents              []meter.BillingIntent
		items                []meter.StripeCharge
		adopt                int
		stripeCents, ledger  int64
		afterBilled, lastSeq int64
	}{
		{"InStep", []meter.BillingIntent{done(1, 300)}, []meter.StripeCharge{item(1, 300)}, 0, 300, 300, 300, 1},
		{"RestoredLedgerForgot", nil, []meter.StripeCharge{item(1, 300)}, 1, 300, 0, 300, 1},
		{"OpenIntentStripeHas", []meter.BillingIntent{{AccountID: "a", PeriodStart: nov, Seq: 2, AmountCents: 200, Status: meter.IntentSent}},
			[]meter.StripeCharge{item(1, 300), item(2, 200)}, 2, 500, 0, 500, 2},
		{"NothingAnywhere", nil, nil, 0, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := meter.Reconcile(tt.intents, tt.items, now)
			if len(r.Adopt) != tt.adopt || r.StripeCents != tt.stripeCents || r.LedgerCents != tt.ledger {
				t.Fatalf("reconcile = %+v", r)
			}
			var st meter.BillingState
			for _, in := range tt.intents {
				if in.Status == meter.IntentDone {
					st.BilledCents += in.AmountCents
				}
				st.LastSeq = max(st.LastSeq, in.Seq)
			}
			for _, a := range r.Adopt {
				if a.Status != meter.IntentDone || !a.Adopted {
					t.Fatalf("adopted %+v", a)
				}
				meter.ApplyAdoption(&st, a, false)
			}
			if st.BilledCents != tt.afterBilled || int64(st.LastSeq) != tt.lastSeq {
				t.Fatalf("state after adoption %+v", st)
			}
		})
	}
	if !meter.NeedsStripeCheck(meter.BillingState{Epoch: 0}, 1) || meter.NeedsStripeCheck(meter.BillingState{Epoch: 1}, 1) {
		t.Fatal("NeedsStripeCheck")
	}
}

func TestPlans_UpgradeFor(t *testing.T) {
	plans, err := meter.ParsePlans([]byte("plans:\n  scale:\n    limit: 500000\n    hard: true\n    monthly_price_cents: 9900\n"))
	if err != nil {
		t.Fatal(err)
	}
	for from, want := range map[string]string{"free": "pro", "pro": "scale", "scale": "enterprise", "enterprise": ""} {
		if got := plans.UpgradeFor(from); got != want {
			t.Errorf("UpgradeFor(%s) = %q, want %q", from, got, want)
		}
	}
}
