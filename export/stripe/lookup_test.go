package stripe_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/meter"
)

// Once Stripe may have forgotten an intent's key, the rerun lists what
// Stripe holds for the period by metadata: the item found, it is recorded
// (nothing is sent); not found, the intent is sent with the same key.
func TestService_ForgottenKey(t *testing.T) {
	tests := []struct {
		name string
		// accepted: the lost attempt created the item before the process
		// died; otherwise Stripe answered 500 and created nothing.
		accepted    bool
		wantPosts   int
		wantCharged int64
	}{
		{"ItemFoundByMetadata", true, 1, 0},
		{"ItemMissingIsSent", false, 2, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
			f.account("other", "pro", "cus_pro1") // another account's item on the same customer
			f.account("pro1", "pro", "cus_pro1")
			f.calls("other", 10+2000)
			f.run()
			f.calls("pro1", 10+5000)
			if tt.accepted {
				billing.SetAfterStripeAcceptFn(f.svc, func() error { return errCrash })
				if _, err := f.svc.Run(context.Background()); !errors.Is(err, errCrash) {
					t.Fatalf("Run = %v, want the crash", err)
				}
			} else {
				f.rec.failNext(fault500)
				f.run()
			}
			f.rec.prune()
			f.restart()
			f.clock.Add(25 * time.Hour) // past the key retention and the dead run's lease
			rep := f.run()
			if !rep.OK() || rep.ChargedCents != tt.wantCharged {
				t.Fatalf("rerun: %s %+v", rep.String(), rep.Lines)
			}
			posts := f.rec.posts()
			if len(posts) != 1+tt.wantPosts || posts[len(posts)-1].Key != meter.IntentKey("pro1", nov1, 1) {
				t.Fatalf("posts = %+v, want %d for pro1", posts, tt.wantPosts)
			}
			if !lookedUp(f) {
				t.Fatal("the rerun did not list the customer's invoice items")
			}
			var pro1Items []item
			for _, it := range f.rec.itemsOf("cus_pro1") {
				if it.Metadata["meterd_account_id"] == "pro1" {
					pro1Items = append(pro1Items, it)
				}
			}
			intents := f.intents()
			if len(pro1Items) != 1 || pro1Items[0].Amount != 500 {
				t.Fatalf("pro1 items = %+v, want exactly one of 500 cents", pro1Items)
			}
			for _, it := range intents {
				if it.AccountID == "pro1" && (it.Status != meter.IntentDone || it.StripeID != pro1Items[0].ID) {
					t.Fatalf("intent = %+v, want done with %s", it, pro1Items[0].ID)
				}
			}
		})
	}
}

func lookedUp(f *fixture) bool {
	reqs, _ := f.rec.snapshot()
	for _, r := range reqs {
		if r.Method == http.MethodGet && r.Path == "/v1/invoiceitems" {
			return true
		}
	}
	return false
}

// A definite refusal fails the intent; the next run bills the same amount
// under a new intent and key.
func TestService_Refused(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	f.rec.failNext(faultRefuse)
	rep := f.run()
	if rep.OK() || rep.Lines[0].Status != "failed" || !strings.Contains(rep.Lines[0].Error, "No such customer") {
		t.Fatalf("refused run: %s %+v", rep.String(), rep.Lines)
	}
	if st := f.billed("pro1"); st.BilledCents != 0 || st.OpenSeq != 0 {
		t.Fatalf("state after refusal = %+v", st)
	}
	rep = f.run()
	intents := f.intents()
	if rep.ChargedCents != 500 || len(intents) != 2 || intents[0].Status != meter.IntentFailed || intents[1].Status != meter.IntentDone {
		t.Fatalf("second run: %s, intents %+v", rep.String(), intents)
	}
	if posts := f.rec.posts(); posts[0].Key == posts[1].Key || len(f.rec.itemsOf("cus_pro1")) != 1 {
		t.Fatalf("posts = %+v", posts)
	}
	if v := metricValue(t, f.reg, "meterd_billing_charges_total", "result", "failed"); v != 1 {
		t.Fatalf("charges_total{failed} = %v", v)
	}
}

// An idempotency error is a definite answer: the key was used for another
// request and this one created nothing. The period is reconciled with what
// Stripe holds (nothing here), the intent is closed as failed, and the
// amount is billed under a fresh key in the same run; no run errors.
func TestService_IdempotencyError(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+5000)
	key := meter.IntentKey("pro1", nov1, 1)
	f.rec.seedKey(key)
	rep := f.run()
	if !rep.OK() || rep.ChargedCents != 500 {
		t.Fatalf("run: %s %+v", rep.String(), rep.Lines)
	}
	posts := f.rec.posts()
	if len(posts) != 2 || posts[0].Key != key || posts[1].Key != meter.IntentKey("pro1", nov1, 2) {
		t.Fatalf("posts = %+v", posts)
	}
	if got := sumAmounts(f.rec.itemsOf("cus_pro1")); got != 500 {
		t.Fatalf("billed %d cents, want 500", got)
	}
	if rep := f.run(); !rep.OK() || rep.Charges != 0 {
		t.Fatalf("second run: %s", rep.String())
	}
	if v := metricValue(t, f.reg, "meterd_billing_intents_pending"); v != 0 {
		t.Fatalf("intents_pending = %v, want 0", v)
	}
}

// When Stripe stops answering, a run stops sending after a few charges
// instead of waiting out every timeout, and writes no further intents.
func TestService_StripeDown(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(36*time.Hour))
	for _, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
		f.account(id, "pro", "cus_"+id)
		f.calls(id, 10+100)
	}
	f.rec.failNext(fault500, fault500, fault500)
	rep := f.run()
	if rep.Errors != 5 || len(f.rec.posts()) != 3 {
		t.Fatalf("report %s, %d posts; want 5 errors and 3 posts", rep.String(), len(f.rec.posts()))
	}
	open, _ := f.led.OpenBillingIntents(context.Background())
	if len(open) != 3 {
		t.Fatalf("%d open intents, want 3 (none for skipped accounts)", len(open))
	}
	rep = f.run()
	if !rep.OK() || rep.ChargedCents != 5*10 || len(f.rec.itemsOf("cus_a1")) != 1 {
		t.Fatalf("recovery run: %s %+v", rep.String(), rep.Lines)
	}
}
