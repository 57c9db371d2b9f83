package stripe_test

import (
	"context"
	"testing"
	"time"

	"github.com/meterd/meterd/meter"
)

// TestService_LastRun: the console's health panel shows the latest real
// run; previews do not replace it.
func TestService_LastRun(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	if _, _, ok := f.svc.LastRun(); ok {
		t.Fatal("a last run before any run")
	}
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	f.run()
	if _, err := f.svc.Bill(context.Background(), meter.BillingOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	rep, errText, ok := f.svc.LastRun()
	if !ok || errText != "" || rep.DryRun || rep.Charges != 1 || rep.ChargedCents != 500 || rep.FinishedAt.IsZero() || rep.Lines != nil {
		t.Errorf("last run = %+v, %q, %v; want the real run's summary, finished, without lines", rep, errText, ok)
	}
}
