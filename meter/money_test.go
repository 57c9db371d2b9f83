package meter_test

import (
	"math"
	"testing"

	"github.com/meterd/meterd/meter"
)

var (
	moneyFree = meter.Plan{Name: "free", Limit: 1000, Hard: true}
	moneyPro  = meter.Plan{Name: "pro", Limit: 100000, OverageMicros: 1000, MonthlyPriceCents: 2900}
	moneyEnt  = meter.Plan{Name: "enterprise", PricePerAccount: true}
)

func TestOverageCalls(t *testing.T) {
	tests := []struct {
		name  string
		plan  meter.Plan
		calls int64
		want  int64
	}{
		{"ProBusinessPlanExample", moneyPro, 105000, 5000},
		{"ProAtLimit", moneyPro, 100000, 0},
		{"ProOneOver", moneyPro, 100001, 1},
		{"ProUnder", moneyPro, 5, 0},
		{"FreeHardNeverOverage", moneyFree, 5000, 0},
		{"EnterpriseUnlimited", moneyEnt, math.MaxInt64, 0},
		{"Negative", moneyPro, -10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := meter.OverageCalls(tt.plan, tt.calls); got != tt.want {
				t.Fatalf("OverageCalls(%s, %d) = %d, want %d", tt.plan.Name, tt.calls, got, tt.want)
			}
		})
	}
}

func TestOverageCostCents(t *testing.T) {
	tests := []struct {
		name   string
		calls  int64
		micros int64
		want   int64
	}{
		{"BusinessPlanExample", 5000, 1000, 500},
		{"Zero", 0, 1000, 0},
		{"OneCallIsNotACent", 1, 1000, 0},
		{"NineCalls", 9, 1000, 0},
		{"TenCallsOneCent", 10, 1000, 1},
		{"ElevenCallsFloor", 11, 1000, 1},
		{"Large", 123457, 1000, 12345},
		{"OneMicro", 10000, 1, 1},
		{"OneMicroJustShort", 9999, 1, 0},
		{"OddMicros", 31, 333, 1},      // 10,323 micros
		{"OddMicrosShort", 30, 333, 0}, // 9,990 micros
		{"OddMicrosLarge", 1000001, 333, 33300},
		{"NegativeCalls", -5, 1000, 0},
		{"NegativeMicros", 5, -1000, 0},
		{"ZeroMicros", 5000, 0, 0},
		// The products below overflow int64; 128-bit math keeps them exact.
		{"ProductOverflowsInt64", math.MaxInt64, 1000, math.MaxInt64 / 10},
		{"ProductOverflowsExact", 1 << 62, 10000, 1 << 62},
		{"Saturates", math.MaxInt64, math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := meter.OverageCostCents(tt.calls, tt.micros); got != tt.want {
				t.Fatalf("OverageCostCents(%d, %d) = %d, want %d", tt.calls, tt.micros, got, tt.want)
			}
		})
	}
}

// TestOverageCostCents_Floor checks floor(k/10) cents at 1000 micros over a
// range of k: never more than the calls cost, and the fraction carried to
// the next bill is always less than a cent.
func TestOverageCostCents_Floor(t *testing.T) {
	for k := range int64(2000) {
		got := meter.OverageCostCents(k, 1000)
		owedMicros := k * 1000
		if got != k/10 || got*10000 > owedMicros || owedMicros-got*10000 >= 10000 {
			t.Fatalf("OverageCostCents(%d, 1000) = %d, want %d", k, got, k/10)
		}
	}
}

func TestRemaining(t *testing.T) {
	tests := []struct {
		name  string
		plan  meter.Plan
		calls int64
		want  int64
	}{
		{"FreeFresh", moneyFree, 0, 1000},
		{"FreeSome", moneyFree, 400, 600},
		{"FreeExhausted", moneyFree, 1000, 0},
		{"ProOver", moneyPro, 105000, 0},
		{"Unlimited", moneyEnt, 123, 0},
		{"NegativeCalls", moneyFree, -5, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := meter.Remaining(tt.plan, tt.calls); got != tt.want {
				t.Fatalf("Remaining(%s, %d) = %d, want %d", tt.plan.Name, tt.calls, got, tt.want)
			}
		})
	}
}

func TestUsagePercentage(t *testing.T) {
	tests := []struct {
		name  string
		plan  meter.Plan
		calls int64
		want  float64
	}{
		{"Zero", moneyFree, 0, 0},
		{"Half", moneyFree, 500, 50},
		{"Full", moneyFree, 1000, 100},
		{"RoundsToTwoDecimals", moneyFree, 1, 0.1},
		{"RoundsUp", moneyPro, 12345, 12.35},
		{"Thirds", meter.Plan{Limit: 3}, 1, 33.33},
		{"OverSoftLimit", moneyPro, 105000, 105},
		{"Unlimited", moneyEnt, 1 << 40, 0},
		{"Negative", moneyFree, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := meter.UsagePercentage(tt.plan, tt.calls); got != tt.want {
				t.Fatalf("UsagePercentage(%s, %d) = %v, want %v", tt.plan.Name, tt.calls, got, tt.want)
			}
		})
	}
}
