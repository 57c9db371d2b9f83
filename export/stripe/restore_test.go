package stripe_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// backup writes a backup of the fixture's ledger and returns its path.
func (f *fixture) backup() string {
	f.t.Helper()
	path := filepath.Join(f.t.TempDir(), "backup.db")
	out, err := os.Create(path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer out.Close()
	if _, err := f.led.Backup(context.Background(), out); err != nil {
		f.t.Fatal(err)
	}
	return path
}

// restore installs a backup as meterd restore does (the epoch moves on)
// and reopens everything.
func (f *fixture) restore(backup string) {
	f.t.Helper()
	if err := f.led.Close(); err != nil {
		f.t.Fatal(err)
	}
	if err := ledger.Restore(context.Background(), backup, filepath.Dir(f.path), ledger.RestoreOptions{Force: true}); err != nil {
		f.t.Fatal(err)
	}
	f.open()
}

// copyBack puts a backup in place by copying the file, as a filesystem
// snapshot rollback would: the ledger does not know it was restored.
func (f *fixture) copyBack(backup string) {
	f.t.Helper()
	if err := f.led.Close(); err != nil {
		f.t.Fatal(err)
	}
	data, err := os.ReadFile(backup)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.path, data, 0o600); err != nil {
		f.t.Fatal(err)
	}
	f.open()
}

func (f *fixture) assertReconciled(wantStripe int64) {
	f.t.Helper()
	rep, err := f.svc.Reconcile(context.Background(), "2026-11")
	if err != nil {
		f.t.Fatal(err)
	}
	if rep.Differences != 0 || len(rep.Lines) != 1 || rep.Lines[0].StripeBilledCents != wantStripe ||
		rep.Lines[0].LedgerBilledCents != wantStripe || rep.Lines[0].DifferenceCents != 0 {
		f.t.Fatalf("reconcile: %+v", rep)
	}
}

// Backup, a run bills 300¢, restore of the backup, then runs while Stripe
// has forgotten the keys: the restored ledger knows it was restored, lists
// what Stripe holds for the period before charging, and bills nothing
// twice.
func TestService_RestoreForgottenKeys(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+3000)
	bk := f.backup()
	f.clock.Set(nov1.AddDate(0, 0, 2))
	if rep := f.run(); rep.ChargedCents != 300 {
		t.Fatalf("first run: %s", rep.String())
	}
	f.restore(bk)
	if f.led.Epoch() != 1 || f.led.RestoredAt().IsZero() {
		t.Fatalf("epoch %d restored at %v", f.led.Epoch(), f.led.RestoredAt())
	}
	for i := range 3 {
		f.rec.prune() // Stripe forgets every key
		f.clock.Add(25 * time.Hour)
		if rep := f.run(); !rep.OK() || rep.Charges != 0 {
			t.Fatalf("run %d after restore: %s %+v", i, rep.String(), rep.Lines)
		}
	}
	if got := sumAmounts(f.rec.itemsOf("cus_pro1")); got != 300 {
		t.Fatalf("billed %d cents, want 300", got)
	}
	f.assertReconciled(300)
	if v := metricValue(t, f.reg, "meterd_billing_adopted_items_total"); v != 1 {
		t.Fatalf("adopted_items_total = %v", v)
	}
	// New overage after the restore is billed under a fresh key.
	f.calls("pro1", 2000)
	f.rec.prune()
	if rep := f.run(); rep.ChargedCents != 200 {
		t.Fatalf("run after new calls: %s %+v", rep.String(), rep.Lines)
	}
	items := f.rec.itemsOf("cus_pro1")
	if sumAmounts(items) != 500 || items[1].Metadata["meterd_seq"] != "2" {
		t.Fatalf("items = %+v", items)
	}
	f.assertReconciled(500)
}

// The same after a rollback the ledger cannot know about (a file copied
// back), with Stripe still holding the key: the next charge reuses key 1
// with another amount, and Stripe's idempotency_error is taken as the
// definite answer it is. No run errors, nothing is billed twice, and the
// reconcile report shows no difference.
func TestService_RollbackIdempotencyError(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+3000)
	bk := f.backup()
	f.clock.Set(nov1.AddDate(0, 0, 2))
	if rep := f.run(); rep.ChargedCents != 300 {
		t.Fatalf("first run: %s", rep.String())
	}
	f.copyBack(bk)
	if f.led.Epoch() != 0 {
		t.Fatalf("epoch = %d", f.led.Epoch())
	}
	f.calls("pro1", 2000) // the ledger now says 500¢ due, 0 billed
	for i := range 3 {
		f.clock.Add(time.Hour)
		rep := f.run()
		if !rep.OK() {
			t.Fatalf("run %d: %s %+v", i, rep.String(), rep.Lines)
		}
	}
	items := f.rec.itemsOf("cus_pro1")
	if sumAmounts(items) != 500 || len(items) != 2 {
		t.Fatalf("items = %+v", items)
	}
	var idem int
	for _, p := range f.rec.posts() {
		if p.Key == meter.IntentKey("pro1", nov1, 1) {
			idem++
		}
	}
	if idem != 2 { // the first charge, and the refused reuse; never again
		t.Fatalf("key 1 posted %d times", idem)
	}
	f.assertReconciled(500)
	if v := metricValue(t, f.reg, "meterd_billing_intents_pending"); v != 0 {
		t.Fatalf("intents_pending = %v", v)
	}
}
