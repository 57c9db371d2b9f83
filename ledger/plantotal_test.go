package ledger_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/meterd/meterd/meter"
)

// TestLedger_PlanDailyUsage: each call lands in its plan's daily total in
// the commit that holds it, denied calls count as denied, empty days are
// zero, and the totals survive a reopen.
func TestLedger_PlanDailyUsage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meter.db")
	l := mustOpenAt(t, path)
	evs := []*meter.Event{
		newEvent("a", jan.Add(time.Hour), meter.Allowed, false),
		newEvent("a", jan.Add(2*time.Hour), meter.Allowed, true),
		newEvent("b", jan.Add(3*time.Hour), meter.Denied, false),
		newEvent("b", jan.Add(49*time.Hour), meter.Allowed, false),
		newEvent("c", jan.Add(50*time.Hour), meter.Allowed, false), // no plan: only daily_total
	}
	for i, p := range []string{"pro", "pro", "free", "free", ""} {
		evs[i].Plan = p
	}
	mustAppendAll(t, l, evs)
	read := func() map[string][]meter.DailyUsage {
		got, err := l.PlanDailyUsage(ctx, []string{"free", "pro", "enterprise"}, jan, jan.AddDate(0, 0, 2))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	verify := func(got map[string][]meter.DailyUsage) {
		t.Helper()
		calls := func(p string) []int64 {
			out := []int64{}
			for _, d := range got[p] {
				out = append(out, d.Calls)
			}
			return out
		}
		if c := calls("pro"); len(c) != 3 || c[0] != 2 || c[1] != 0 || c[2] != 0 || got["pro"][0].Overage != 1 {
			t.Errorf("pro: %v", got["pro"])
		}
		if c := calls("free"); len(c) != 3 || c[0] != 0 || c[2] != 1 || got["free"][0].Denied != 1 {
			t.Errorf("free: %v", got["free"])
		}
		if c := calls("enterprise"); len(c) != 3 || c[0]+c[1]+c[2] != 0 {
			t.Errorf("enterprise: %v", got["enterprise"])
		}
	}
	verify(read())
	l.Close()
	l = mustOpenAt(t, path)
	verify(read())
}
