package stripe_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/meter"
)

// A dry run lists what would be charged and the projected period total,
// and touches neither Stripe nor the ledger.
func TestService_Preview(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, smallPro, nov1.Add(time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.account("ent1", "enterprise", "cus_ent1")
	f.calls("pro1", 10+95)
	f.calls("ent1", 50)
	f.clock.Set(nov1.AddDate(0, 0, 15)) // half of November
	rep, err := f.svc.Preview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DryRun || len(rep.Lines) != 1 || rep.ChargedCents != 9 {
		t.Fatalf("preview = %s %+v", rep.String(), rep.Lines)
	}
	l := rep.Lines[0]
	// 105 calls in half the period project to 210: 200 overage, 20 cents.
	if l.Status != "would_charge" || l.ChargeCents != 9 || l.BillableCents != 9 || l.OverageCalls != 95 || l.ProjectedCents != 20 {
		t.Fatalf("line = %+v", l)
	}
	if reqs, _ := f.rec.snapshot(); len(reqs) != 0 {
		t.Fatalf("a dry run sent %d requests to Stripe", len(reqs))
	}
	if intents := f.intents(); len(intents) != 0 {
		t.Fatalf("a dry run wrote intents: %+v", intents)
	}
	t.Run("WithOpenIntent", func(t *testing.T) {
		f.rec.failNext(fault500)
		f.run() // 9 cents stay open
		f.calls("pro1", 100)
		posts := len(f.rec.posts())
		rep, err := f.svc.Bill(ctx, meter.BillingOptions{DryRun: true, Period: "2026-11"})
		if err != nil || len(rep.Lines) != 2 {
			t.Fatalf("preview = %v %+v", err, rep.Lines)
		}
		pending, period := rep.Lines[0], rep.Lines[1]
		if pending.Status != "pending" || pending.ChargeCents != 9 || period.Status != "would_charge" || period.ChargeCents != 10 {
			t.Fatalf("lines = %+v", rep.Lines)
		}
		if len(f.rec.posts()) != posts {
			t.Fatal("a dry run retried the open intent")
		}
	})
	t.Run("OtherMonth", func(t *testing.T) {
		rep, err := f.svc.Bill(ctx, meter.BillingOptions{DryRun: true, Period: "2026-10"})
		if err != nil || len(rep.Lines) != 1 || rep.Lines[0].Status != "pending" {
			t.Fatalf("October preview = %v %+v (only the open intent is listed)", err, rep.Lines)
		}
	})
	t.Run("BadPeriod", func(t *testing.T) {
		var verr *meter.ValidationError
		if _, err := f.svc.Bill(ctx, meter.BillingOptions{DryRun: true, Period: "2026-13"}); !errors.As(err, &verr) {
			t.Fatalf("err = %v, want a validation error", err)
		}
		if _, err := f.svc.Charges(ctx, "nov"); !errors.As(err, &verr) {
			t.Fatalf("Charges err = %v, want a validation error", err)
		}
	})
}

func TestService_NoSecretKey(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+50)
	svc, err := billing.New(billing.Config{Store: f.led, Accounts: f.meter, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := svc.Preview(context.Background()); err != nil || rep.ChargedCents != 5 {
		t.Fatalf("preview without a key = %v %s", err, rep.String())
	}
	if _, err := svc.Run(context.Background()); !errors.Is(err, billing.ErrNoSecretKey) {
		t.Fatalf("Run = %v, want ErrNoSecretKey", err)
	}
	bad := []billing.Config{
		{Accounts: f.meter},
		{Store: f.led, Accounts: f.meter, Currency: "USD"},
		// Amounts are in hundredths: JPY would be billed 100 times too
		// much, BHD 10 times too little; both are refused.
		{Store: f.led, Accounts: f.meter, Currency: "jpy"},
		{Store: f.led, Accounts: f.meter, Currency: "krw"},
		{Store: f.led, Accounts: f.meter, Currency: "bhd"},
	}
	for _, cfg := range bad {
		if _, err := billing.New(cfg); err == nil {
			t.Fatalf("New(%+v) succeeded", cfg)
		}
	}
	if err := billing.CheckCurrency("jpy"); err == nil || !strings.Contains(err.Error(), "two decimals") {
		t.Fatalf("CheckCurrency(jpy) = %v", err)
	}
	for _, c := range []string{"usd", "eur", "gbp", "chf"} {
		if err := billing.CheckCurrency(c); err != nil {
			t.Fatalf("CheckCurrency(%s) = %v", c, err)
		}
	}
}

// Periods of anchored accounts run anchor to anchor; the charge names
// that period.
func TestService_AnchoredPeriod(t *testing.T) {
	f := newFixture(t, smallPro, time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC))
	anchor := time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)
	if _, err := f.meter.CreateAccount(context.Background(), meter.Account{ID: "anch", Name: "anch", Plan: "pro",
		StripeCustomerID: "cus_anch", BillingAnchor: &anchor}); err != nil {
		t.Fatal(err)
	}
	f.calls("anch", 10+300)
	f.clock.Set(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)) // the period's end and its grace
	rep := f.run()
	items := f.rec.itemsOf("cus_anch")
	if len(items) != 1 || items[0].Amount != 30 || !rep.Lines[0].Finalized {
		t.Fatalf("items = %+v, lines = %+v", items, rep.Lines)
	}
	if want := "API overage: 300 calls, 2026-10-31 – 2026-11-30"; items[0].Description != want {
		t.Fatalf("description = %q, want %q", items[0].Description, want)
	}
}

func TestDescription(t *testing.T) {
	tests := []struct {
		calls int64
		want  string
	}{
		{1, "API overage: 1 call, 2026-11-01 – 2026-12-01"},
		{999, "API overage: 999 calls, 2026-11-01 – 2026-12-01"},
		{5000, "API overage: 5,000 calls, 2026-11-01 – 2026-12-01"},
		{1234567, "API overage: 1,234,567 calls, 2026-11-01 – 2026-12-01"},
	}
	for _, tt := range tests {
		got := billing.Description(meter.BillingIntent{Calls: tt.calls, PeriodStart: nov1, PeriodEnd: dec1})
		if got != tt.want {
			t.Errorf("Description(%d) = %q, want %q", tt.calls, got, tt.want)
		}
	}
}
