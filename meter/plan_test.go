package meter_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meterd/meterd/meter"
)

func TestDefaultPlans(t *testing.T) {
	plans := meter.DefaultPlans()
	tests := []struct {
		name string
		want meter.Plan
	}{
		{"free", meter.Plan{Name: "free", Limit: 1000, Hard: true}},
		{"pro", meter.Plan{Name: "pro", Limit: 100000, OverageMicros: 1000, MonthlyPriceCents: 2900}},
		{"enterprise", meter.Plan{Name: "enterprise", PricePerAccount: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := plans.Get(tt.name)
			if !ok || got != tt.want {
				t.Fatalf("Get(%q) = %+v, %v; want %+v", tt.name, got, ok, tt.want)
			}
		})
	}
	t.Run("Unknown", func(t *testing.T) {
		if _, ok := plans.Get("gold"); ok {
			t.Fatal("Get(gold) found a plan")
		}
	})
	t.Run("Names", func(t *testing.T) {
		if got, want := plans.Names(), []string{"free", "pro", "enterprise"}; !slices.Equal(got, want) {
			t.Fatalf("Names() = %v, want %v", got, want)
		}
	})
	t.Run("Default", func(t *testing.T) {
		if got := plans.Default(); got != "free" {
			t.Fatalf("Default() = %q, want free", got)
		}
	})
}

func TestPlan_Unlimited(t *testing.T) {
	tests := []struct {
		limit int64
		want  bool
	}{{0, true}, {-1, true}, {1, false}, {100000, false}}
	for _, tt := range tests {
		if got := (meter.Plan{Limit: tt.limit}).Unlimited(); got != tt.want {
			t.Errorf("Plan{Limit: %d}.Unlimited() = %v, want %v", tt.limit, got, tt.want)
		}
	}
}

func TestPlan_Price(t *testing.T) {
	plans := meter.DefaultPlans()
	pro, _ := plans.Get("pro")
	ent, _ := plans.Get("enterprise")
	tests := []struct {
		name    string
		plan    meter.Plan
		account *meter.Account
		want    int64
	}{
		{"ProPlanPrice", pro, &meter.Account{}, 2900},
		{"ProNilAccount", pro, nil, 2900},
		{"ProAccountOverride", pro, &meter.Account{MonthlyPriceCents: 1900}, 1900},
		{"EnterprisePerAccount", ent, &meter.Account{MonthlyPriceCents: 250000}, 250000},
		{"EnterpriseUnpriced", ent, &meter.Account{}, 0},
		{"EnterpriseNilAccount", ent, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.plan.Price(tt.account); got != tt.want {
				t.Fatalf("Price() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParsePlans(t *testing.T) {
	t.Run("Override", func(t *testing.T) {
		plans := mustParsePlans(t, "plans:\n  pro:\n    limit: 200000\n    overage_micros: 500\n")
		got, _ := plans.Get("pro")
		// An entry replaces the default wholly: the price is not inherited.
		want := meter.Plan{Name: "pro", Limit: 200000, OverageMicros: 500}
		if got != want {
			t.Fatalf("pro = %+v, want %+v", got, want)
		}
		if free, _ := plans.Get("free"); free.Limit != 1000 {
			t.Fatalf("free changed: %+v", free)
		}
	})
	t.Run("AddedPlans", func(t *testing.T) {
		plans := mustParsePlans(t, `
plans:
  startup:
    limit: 20000
    hard: true
    monthly_price_cents: 900
  agency:
    name: agency
    limit: 500000
    overage_micros: 200
`)
		got, ok := plans.Get("startup")
		want := meter.Plan{Name: "startup", Limit: 20000, Hard: true, MonthlyPriceCents: 900}
		if !ok || got != want {
			t.Fatalf("startup = %+v, %v; want %+v", got, ok, want)
		}
		wantNames := []string{"free", "pro", "enterprise", "agency", "startup"}
		if names := plans.Names(); !slices.Equal(names, wantNames) {
			t.Fatalf("Names() = %v, want %v", names, wantNames)
		}
	})
	t.Run("JSON", func(t *testing.T) {
		plans := mustParsePlans(t, "{\n\t\"plans\": {\n\t\t\"pro\": {\"limit\": 5, \"overage_micros\": 1}\n\t}\n}")
		if got, _ := plans.Get("pro"); got.Limit != 5 || got.OverageMicros != 1 {
			t.Fatalf("pro = %+v", got)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		for _, in := range []string{"", "# nothing\n", "{}", "plans: {}"} {
			plans := mustParsePlans(t, in)
			if got := plans.Names(); len(got) != 3 {
				t.Fatalf("ParsePlans(%q).Names() = %v", in, got)
			}
		}
	})
	t.Run("NamesCopy", func(t *testing.T) {
		plans := meter.DefaultPlans()
		plans.Names()[0] = "changed"
		if plans.Names()[0] != "free" {
			t.Fatal("Names() exposes internal state")
		}
	})
}

func TestParsePlans_Invalid(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		field string
	}{
		{"NegativeLimit", "plans: {pro: {limit: -1}}", "plans.pro.limit"},
		{"NegativeOverage", "plans: {pro: {limit: 10, overage_micros: -5}}", "plans.pro.overage_micros"},
		{"NegativePrice", "plans: {pro: {limit: 10, monthly_price_cents: -1}}", "plans.pro.monthly_price_cents"},
		{"HardUnlimited", "plans: {free: {hard: true}}", "plans.free.limit"},
		{"OverageOnHard", "plans: {free: {limit: 10, hard: true, overage_micros: 1}}", "plans.free.overage_micros"},
		{"OverageUnlimited", "plans: {big: {overage_micros: 1}}", "plans.big.overage_micros"},
		{"NameUpperCase", "plans: {Gold: {limit: 1}}", "plans.Gold"},
		{"NameDigitFirst", "plans: {1x: {limit: 1}}", "plans.1x"},
		{"NameTooLong", "plans: {" + strings.Repeat("a", 33) + ": {limit: 1}}", "plans." + strings.Repeat("a", 33)},
		{"NameMismatch", "plans: {pro: {name: gold, limit: 1}}", "plans.pro.name"},
		{"NullEntry", "plans:\n  pro:\n", "plans.pro"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := meter.ParsePlans([]byte(tt.in))
			var verr *meter.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("ParsePlans() error = %v, want a *ValidationError", err)
			}
			if verr.Field != tt.field || !strings.Contains(err.Error(), tt.field+": ") {
				t.Fatalf("error = %q (field %q), want field %q", err, verr.Field, tt.field)
			}
		})
	}
	t.Run("Message", func(t *testing.T) {
		_, err := meter.ParsePlans([]byte("plans: {pro: {limit: -1}}"))
		if err == nil || err.Error() != "plans.pro.limit: must be >= 0" {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("AllReported", func(t *testing.T) {
		_, err := meter.ParsePlans([]byte("plans: {a: {limit: -1}, b: {monthly_price_cents: -1}}"))
		if err == nil || !strings.Contains(err.Error(), "plans.a.limit") || !strings.Contains(err.Error(), "plans.b.monthly_price_cents") {
			t.Fatalf("error = %v, want both fields", err)
		}
	})
}

func TestParsePlans_Malformed(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"UnknownPlanField", "plans: {pro: {limit: 1, overage_cents: 3}}", "overage_cents"},
		{"UnknownTopLevel", "plan: {pro: {limit: 1}}", "plan"},
		{"BadYAML", "plans:\n  pro: {limit: 1\n", "parse plans"},
		{"BadJSON", `{"plans": {"pro": {"limit": 1,}}`, "parse plans"},
		{"WrongType", "plans: {pro: {limit: lots}}", "lots"},
		{"Overflow", "plans: {pro: {limit: 9223372036854775808}}", "parse plans"},
		{"DuplicateKey", "plans: {pro: {limit: 1}, pro: {limit: 2}}", "already defined"},
		{"TwoDocuments", "plans: {}\n---\nplans: {}\n", "more than one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := meter.ParsePlans([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParsePlans() error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestLoadPlans(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "plans.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	writePlansFile(t, good, "plans: {startup: {limit: 5000, hard: true}}\n")
	writePlansFile(t, bad, "plans: {startup: {limit: -5}}\n")

	t.Run("OK", func(t *testing.T) {
		plans, err := meter.LoadPlans(good)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := plans.Get("startup"); !ok {
			t.Fatal("startup plan missing")
		}
	})
	tests := []struct{ name, path string }{
		{"Missing", filepath.Join(dir, "nope.yaml")},
		{"Invalid", bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := meter.LoadPlans(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("LoadPlans() error = %v, want it to mention %s", err, tt.path)
			}
		})
	}
}

func mustParsePlans(tb testing.TB, in string) *meter.Plans {
	tb.Helper()
	plans, err := meter.ParsePlans([]byte(in))
	if err != nil {
		tb.Fatalf("ParsePlans(%q): %v", in, err)
	}
	return plans
}

func writePlansFile(tb testing.TB, path, data string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		tb.Fatal(err)
	}
}
