package ledger_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// TestLedger_Outbox_ScheduledPlanChange: a downgrade scheduled for the
// period end leaves exactly one account.plan_changed notice when it takes
// effect, stored with the account write that clears the pending change,
// whichever way the change is put in force and however often meterd
// restarts or saves.
func TestLedger_Outbox_ScheduledPlanChange(t *testing.T) {
	march := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	april := time.Date(2026, 4, 1, 0, 0, 5, 0, time.UTC)
	cases := []struct {
		name string
		// due runs once the clock is past the period end; it may reopen.
		due func(t *testing.T, o *planOpener)
	}{
		{"call rolls it, then the save loop", func(t *testing.T, o *planOpener) {
			trackN(t, o.m, "acme", 1)
			o.save(t)
		}},
		{"idle account, save loop", func(t *testing.T, o *planOpener) { o.save(t) }},
		{"restart before the save", func(t *testing.T, o *planOpener) {
			trackN(t, o.m, "acme", 1)
			o.reopen(t)
			o.save(t)
		}},
		{"admin write carries it", func(t *testing.T, o *planOpener) {
			trackN(t, o.m, "acme", 1)
			name := "Acme Ltd"
			if _, err := o.m.UpdateAccount(context.Background(), "acme", meter.AccountPatch{Name: &name}); err != nil {
				t.Fatal(err)
			}
		}},
		{"suspend carries it", func(t *testing.T, o *planOpener) {
			trackN(t, o.m, "acme", 1)
			if _, err := o.m.SuspendAccount(context.Background(), "acme"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			o := &planOpener{path: filepath.Join(t.TempDir(), "meter.db"), now: march}
			o.reopen(t)
			defer func() { o.l.Close() }()
			if _, err := o.m.CreateAccount(ctx, meter.Account{ID: "acme", Name: "Acme", Plan: "pro"}); err != nil {
				t.Fatal(err)
			}
			free := "free"
			a, err := o.m.UpdateAccount(ctx, "acme", meter.AccountPatch{Plan: &free})
			if err != nil || a.PendingPlan != "free" {
				t.Fatalf("schedule downgrade: %+v, %v", a, err)
			}
			o.save(t) // not due yet: nothing to store
			if n := o.planNotices(t); len(n) != 0 {
				t.Fatalf("before the period end: %+v", n)
			}
			o.now = april
			c.due(t, o)
			o.save(t) // a second save finds nothing
			o.reopen(t)
			o.save(t) // nor does one after a restart
			ns := o.planNotices(t)
			if len(ns) != 1 || ns[0].Detail["old_plan"] != "pro" || ns[0].Detail["new_plan"] != "free" ||
				!ns[0].Time.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) || ns[0].PeriodStart.Month() != time.April {
				t.Fatalf("plan_changed notices = %+v", ns)
			}
			stored, err := o.l.Accounts(ctx)
			if err != nil || len(stored) != 1 || stored[0].Plan != "free" || stored[0].PendingPlan != "" {
				t.Fatalf("stored account = %+v, %v", stored, err)
			}
		})
	}
}

// planOpener reopens a ledger and a notice-emitting meter on one file
// with a clock the test moves.
type planOpener struct {
	path string
	now  time.Time
	l    *ledger.Ledger
	m    *meter.Meter
}

func (o *planOpener) reopen(t *testing.T) {
	t.Helper()
	if o.l != nil {
		o.l.Close()
	}
	l, err := ledger.Open(o.path, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := meter.New(context.Background(), meter.Config{Store: l, Now: func() time.Time { return o.now }})
	if err != nil {
		t.Fatal(err)
	}
	m.SetNotices(&meter.NoticeConfig{Default: meter.DefaultThresholds()}, l)
	o.l, o.m = l, m
}

func (o *planOpener) save(t *testing.T) {
	t.Helper()
	if err := o.m.SaveDuePlanChanges(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (o *planOpener) planNotices(t *testing.T) []meter.Notice {
	t.Helper()
	ns, err := o.l.Notices(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []meter.Notice
	for _, n := range ns {
		if n.Type == meter.NoticePlanChanged {
			out = append(out, n)
		}
	}
	return out
}
