package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/export/webhook"
	"github.com/meterd/meterd/meter"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func notices(accounts, each int) []meter.Notice {
	var out []meter.Notice
	for i := 0; i < each; i++ {
		for a := 0; a < accounts; a++ {
			acct := fmt.Sprintf("acct%d", a)
			out = append(out, meter.BillingNotice(meter.NoticeChargeCreated, acct, time.Unix(0, 0), fmt.Sprint(i), int64(i), nil))
		}
	}
	for i := range out {
		out[i].Time = time.Now().UTC()
	}
	return out
}

// TestDispatcher_ReceiverDownThenUp: while the receiver answers 503 the
// deliveries back off along the schedule; once it is up, every notice
// arrives, in outbox order per account, each id accepted once.
func TestDispatcher_ReceiverDownThenUp(t *testing.T) {
	ctx := context.Background()
	secret, _ := webhook.NewSecret()
	rcv := newReceiver(t, secret)
	f := newFixture(t, []time.Duration{40 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond,
		320 * time.Millisecond, 640 * time.Millisecond, time.Second, time.Second, time.Second})
	f.endpoint(t, rcv.srv.URL, secret)
	down := true
	rcv.setStatus(func(string) int {
		if down {
			return 503
		}
		return 200
	})
	ns := notices(3, 4)
	if err := f.l.PutNotices(ctx, ns); err != nil {
		t.Fatal(err)
	}
	f.d.Start()
	waitFor(t, 5*time.Second, "four failed attempts", func() bool { return len(rcv.deliveries()) >= 12 })
	rcv.mu.Lock()
	down = false
	rcv.mu.Unlock()
	waitFor(t, 10*time.Second, "every notice accepted", func() bool { return len(rcv.accepted()) == len(ns) })

	// Backoff: consecutive attempts of one id are at least the schedule's
	// wait apart (jitter only adds).
	byID := map[string][]time.Time{}
	for _, d := range rcv.deliveries() {
		byID[d.ID] = append(byID[d.ID], d.At)
	}
	sched := []time.Duration{40 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond, 320 * time.Millisecond}
	retried := 0
	for id, at := range byID {
		for i := 1; i < len(at) && i <= len(sched); i++ {
			if gap := at[i].Sub(at[i-1]); gap < sched[i-1] {
				t.Errorf("%s: attempt %d came %v after the previous one, want >= %v", id, i+1, gap, sched[i-1])
			}
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("no delivery was retried: backoff not exercised")
	}
	// Order per account and exactly one acceptance per id.
	last := map[string]int64{}
	seen := map[string]bool{}
	for _, d := range rcv.accepted() {
		if seen[d.ID] {
			t.Errorf("%s accepted twice", d.ID)
		}
		seen[d.ID] = true
		if d.Data.OverageCents < last[d.Account] {
			t.Errorf("%s: notice %d arrived after %d", d.Account, d.Data.OverageCents, last[d.Account])
		}
		last[d.Account] = d.Data.OverageCents
	}
	waitFor(t, 2*time.Second, "no delivery left pending", func() bool {
		p, _ := f.l.PendingCount(ctx)
		return p == 0
	})
}

// TestDispatcher_DeadLetterAndReplay: a receiver that never answers 2xx
// ends in the dead letter after the schedule; a replay, once it answers
// again, delivers the same webhook-id.
func TestDispatcher_DeadLetterAndReplay(t *testing.T) {
	ctx := context.Background()
	secret, _ := webhook.NewSecret()
	rcv := newReceiver(t, secret)
	f := newFixture(t, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond})
	ep := f.endpoint(t, rcv.srv.URL, secret)
	rcv.setStatus(func(string) int { return 500 })
	n := notices(1, 1)
	if err := f.l.PutNotices(ctx, n); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	f.d.Start()
	waitFor(t, 5*time.Second, "dead letter", func() bool {
		dead, _ := f.admin.Deliveries(ctx, ep.ID, meter.DeliveryDead, 10)
		return len(dead) == 1
	})
	dead, _ := f.admin.Deliveries(ctx, ep.ID, meter.DeliveryDead, 10)
	if dead[0].Attempts != 3 || dead[0].LastStatus != 500 || dead[0].NoticeID != n[0].ID {
		t.Fatalf("dead letter = %+v, want 3 attempts ending in 500", dead[0])
	}
	if got := len(rcv.deliveries()); got != 3 {
		t.Fatalf("receiver saw %d attempts, want 3", got)
	}
	rcv.setStatus(func(string) int { return 200 })
	time.Sleep(100 * time.Millisecond)
	if len(rcv.accepted()) != 0 {
		t.Fatal("a dead delivery was sent again without a replay")
	}
	if k, err := f.admin.Replay(ctx, ep.ID, start, false); err != nil || k != 1 {
		t.Fatalf("replay = %d, %v", k, err)
	}
	waitFor(t, 5*time.Second, "replayed delivery", func() bool { return len(rcv.accepted()) == 1 })
	if got := rcv.accepted()[0].ID; got != n[0].ID {
		t.Fatalf("replay delivered %s, want the original webhook-id %s", got, n[0].ID)
	}
	waitFor(t, 2*time.Second, "the log to show it delivered", func() bool {
		log, _ := f.admin.Deliveries(ctx, ep.ID, "", 10)
		return len(log) == 1 && log[0].Status == meter.DeliveryDelivered && log[0].Attempts == 1
	})
}

// TestSignature_Rotation: during a rotation both the new and the old
// secret verify a delivery with the reference library; after the grace
// only the new one does.
func TestSignature_Rotation(t *testing.T) {
	ctx := context.Background()
	oldSecret, _ := webhook.NewSecret()
	newSecret, _ := webhook.NewSecret()
	now := time.Now()
	f := newFixture(t, nil)
	admin := webhook.NewAdmin(f.l, func() time.Time { return now }, false, time.Hour)
	ep, _, err := admin.CreateEndpoint(ctx, meter.WebhookEndpoint{URL: "https://example.com/h", Enabled: true}, oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	ep, got, err := admin.UpdateEndpoint(ctx, ep.ID, meter.WebhookPatch{RotateSecret: true, Secret: &newSecret})
	if err != nil || got != newSecret {
		t.Fatalf("rotate: %v (secret %q)", err, got)
	}
	body := []byte(`{"type":"x"}`)
	verify := func(at time.Time, secret string) error {
		sig, err := webhook.Signature(ep.ValidSecrets(at), "msg_1", now, body)
		if err != nil {
			t.Fatal(err)
		}
		wh, _ := standardwebhooks.NewWebhook(secret)
		h := http.Header{}
		h.Set("webhook-id", "msg_1")
		h.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
		h.Set("webhook-signature", sig)
		return wh.Verify(body, h)
	}
	for _, s := range []string{oldSecret, newSecret} {
		if err := verify(now, s); err != nil {
			t.Errorf("during rotation: %v", err)
		}
	}
	if sig, _ := webhook.Signature(ep.ValidSecrets(now), "m", now, body); strings.Count(sig, "v1,") != 2 {
		t.Errorf("signature header during rotation = %q, want two v1 signatures", sig)
	}
	if err := verify(now.Add(2*time.Hour), oldSecret); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("old secret after the grace: %v, want no matching signature", err)
	}
	if err := verify(now.Add(2*time.Hour), newSecret); err != nil {
		t.Errorf("new secret after the grace: %v", err)
	}
}

// TestGuard_RefusesInternal: with private addresses refused, a literal
// loopback URL is refused at creation and a name that resolves to
// loopback is refused at dial time; http(s) only in any case.
func TestGuard_RefusesInternal(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, []time.Duration{time.Hour})
	strict := webhook.NewAdmin(f.l, nil, true, 0)
	for _, u := range []string{"ftp://example.com/x", "file:///etc/passwd", "http://user:pw@example.com/", "http://127.0.0.1:9/x", "http://[::1]/x", "http://10.1.2.3/x", "http://169.254.169.254/latest"} {
		if _, _, err := strict.CreateEndpoint(ctx, meter.WebhookEndpoint{URL: u, Enabled: true}, ""); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	secret, _ := webhook.NewSecret()
	rcv := newReceiver(t, secret)
	url := strings.Replace(rcv.srv.URL, "127.0.0.1", "localhost", 1)
	ep, _, err := strict.CreateEndpoint(ctx, meter.WebhookEndpoint{URL: url, Enabled: true}, secret)
	if err != nil {
		t.Fatalf("a name is checked at dial time, not at creation: %v", err)
	}
	d := webhook.New(webhook.Config{Store: f.l, RefusePrivate: true, Poll: 10 * time.Millisecond, Schedule: []time.Duration{time.Hour}})
	defer d.Close()
	if err := f.l.PutNotices(ctx, notices(1, 1)); err != nil {
		t.Fatal(err)
	}
	d.Start()
	var log []meter.WebhookDelivery
	waitFor(t, 5*time.Second, "a refused attempt", func() bool {
		log, _ = strict.Deliveries(ctx, ep.ID, "", 10)
		return len(log) == 1 && log[0].Attempts == 1
	})
	if !strings.Contains(log[0].LastError, "internal") || len(rcv.deliveries()) != 0 {
		t.Fatalf("attempt to loopback: %+v, receiver saw %d", log[0], len(rcv.deliveries()))
	}
}
