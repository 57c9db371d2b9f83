package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// openNoticeMeter opens the ledger at path and a meter on it with the
// default thresholds, frozen at now.
func openNoticeMeter(tb testing.TB, path string, now time.Time) (*ledger.Ledger, *meter.Meter) {
	tb.Helper()
	l, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	m, err := meter.New(context.Background(), meter.Config{Store: l, Now: func() time.Time { return now }})
	if err != nil {
		tb.Fatal(err)
	}
	m.SetNotices(&meter.NoticeConfig{Default: meter.DefaultThresholds()}, l)
	return l, m
}

func trackN(tb testing.TB, m *meter.Meter, account string, n int) {
	tb.Helper()
	for i := 0; i < n; i++ {
		if _, err := m.Track(context.Background(), meter.Call{AccountID: account, Endpoint: "/x", Method: "GET"}); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestLedger_Outbox_ExactlyOncePerCrossing: a Free account's 80 % and
// 100 % and its first denial are stored once each, in order, and a
// restart (counters reloaded) does not fire them again.
func TestLedger_Outbox_ExactlyOncePerCrossing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meter.db")
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	l, m := openNoticeMeter(t, path, now)
	if _, err := m.CreateAccount(ctx, meter.Account{ID: "acme", Name: "Acme", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	trackN(t, m, "acme", 900)
	l.Close()

	l, m = openNoticeMeter(t, path, now)
	defer l.Close()
	trackN(t, m, "acme", 300) // 100 % at call 1000, first denial at 1001
	// Denials are answered before their commit: wait for it.
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ns, err := l.Notices(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ   meter.NoticeType
		th    int64
		calls int64
	}{{meter.NoticeThresholdReached, 80, 800}, {meter.NoticeThresholdReached, 100, 1000}, {meter.NoticeLimitReached, 0, 1000}}
	if len(ns) != len(want) {
		t.Fatalf("outbox holds %d notices, want %d: %+v", len(ns), len(want), ns)
	}
	for i, w := range want {
		n := ns[i]
		if n.Type != w.typ || n.Threshold != w.th || n.Calls != w.calls || n.AccountID != "acme" || n.EventSeq == 0 || n.Seq != uint64(i+1) {
			t.Errorf("notice %d = %+v, want %s %d at %d calls", i, n, w.typ, w.th, w.calls)
		}
	}
	t.Run("SameIDStoredOnce", func(t *testing.T) {
		n := meter.BillingNotice(meter.NoticeChargeCreated, "acme", now, "key1", 500, nil)
		n.Time = now
		for i := 0; i < 2; i++ {
			if err := l.PutNotices(ctx, []meter.Notice{n}); err != nil {
				t.Fatal(err)
			}
		}
		if c, _ := l.NoticeCount(ctx); c != 4 {
			t.Fatalf("outbox holds %d notices after the same one twice, want 4", c)
		}
	})
}

// TestLedger_Outbox_Deliveries drives fan-out, ack, dead letter and
// replay through the store.
func TestLedger_Outbox_Deliveries(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, e := range []meter.WebhookEndpoint{
		{ID: "all", URL: "http://a", Enabled: true},
		{ID: "billing", URL: "http://b", Enabled: true, Types: []meter.NoticeType{meter.NoticeChargeFailed}},
		{ID: "off", URL: "http://c"},
	} {
		if err := l.PutWebhookEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	ns := []meter.Notice{
		meter.BillingNotice(meter.NoticeChargeCreated, "a1", now, "k1", 1, nil),
		meter.BillingNotice(meter.NoticeChargeFailed, "a1", now, "k2", 1, nil),
	}
	if err := l.PutNotices(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if n, err := l.FanOut(ctx, now, 10); err != nil || n != 2 {
		t.Fatalf("fan out = %d, %v", n, err)
	}
	if n, _ := l.FanOut(ctx, now, 10); n != 0 {
		t.Fatalf("second fan out took %d notices again", n)
	}
	counts := map[string]int{}
	for _, id := range []string{"all", "billing", "off"} {
		ds, err := l.PendingDeliveries(ctx, id, 10)
		if err != nil {
			t.Fatal(err)
		}
		counts[id] = len(ds)
	}
	if counts["all"] != 2 || counts["billing"] != 1 || counts["off"] != 0 {
		t.Fatalf("pending per endpoint = %v", counts)
	}
	ds, _ := l.PendingDeliveries(ctx, "all", 10)
	ds[0].Status, ds[1].Status = meter.DeliveryDelivered, meter.DeliveryDead
	for _, d := range ds {
		if err := l.SaveDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if p, _ := l.PendingDeliveries(ctx, "all", 10); len(p) != 0 {
		t.Fatalf("%d still pending after ack and dead letter", len(p))
	}
	if dead, _ := l.DeliveryLog(ctx, "all", meter.DeliveryDead, 10); len(dead) != 1 || dead[0].Seq != 2 {
		t.Fatalf("dead letters = %+v", dead)
	}
	if n, err := l.Replay(ctx, "all", now.Add(-time.Hour), now, false); err != nil || n != 1 {
		t.Fatalf("replay = %d, %v; want the one dead delivery", n, err)
	}
	if p, _ := l.PendingDeliveries(ctx, "all", 10); len(p) != 1 || p[0].Attempts != 0 || p[0].Seq != 2 {
		t.Fatalf("after replay pending = %+v", p)
	}
	if _, err := l.Replay(ctx, "nope", now, now, false); !errors.Is(err, meter.ErrWebhookNotFound) {
		t.Fatalf("replay of unknown endpoint: %v", err)
	}
}

// TestLedger_Outbox_PlanChanged: a plan change through the meter leaves
// one account.plan_changed notice naming both plans; a patch that keeps
// the plan leaves none.
func TestLedger_Outbox_PlanChanged(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	l, m := openNoticeMeter(t, filepath.Join(t.TempDir(), "meter.db"), now)
	defer l.Close()
	if _, err := m.CreateAccount(ctx, meter.Account{ID: "acme", Name: "Acme", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	pro, name := "pro", "Acme Inc"
	if _, err := m.UpdateAccount(ctx, "acme", meter.AccountPatch{Plan: &pro}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpdateAccount(ctx, "acme", meter.AccountPatch{Name: &name}); err != nil {
		t.Fatal(err)
	}
	ns, _ := l.Notices(ctx, 0, 10)
	if len(ns) != 1 || ns[0].Type != meter.NoticePlanChanged || ns[0].Detail["old_plan"] != "free" || ns[0].Detail["new_plan"] != "pro" {
		t.Fatalf("notices = %+v", ns)
	}
}

// TestLedger_Outbox_FailedCrossingCall: the call that crossed 80 % fails
// to commit while a call decided after it commits: the line is crossed
// on disk all the same, so the notice must still be stored, once.
func TestLedger_Outbox_FailedCrossingCall(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	l, m := openNoticeMeter(t, filepath.Join(t.TempDir(), "meter.db"), now)
	defer l.Close()
	if _, err := m.CreateAccount(ctx, meter.Account{ID: "acme", Name: "Acme", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	trackN(t, m, "acme", 799)
	call := meter.Call{AccountID: "acme", Endpoint: "/x", Method: "GET"}
	crossing, err := m.Reserve(ctx, call) // call 800: crosses 80 %
	if err != nil {
		t.Fatal(err)
	}
	after, err := m.Reserve(ctx, call) // call 801
	if err != nil {
		t.Fatal(err)
	}
	if err := after.Finish(ctx, 200, 0); err != nil {
		t.Fatal(err)
	}
	l.SetBeforeCommitFn(func() error { return errors.New("disk on fire") })
	if err := crossing.Finish(ctx, 200, 0); err == nil {
		t.Fatal("the crossing call's commit did not fail")
	}
	l.SetBeforeCommitFn(nil)
	trackN(t, m, "acme", 10)
	c, _ := l.Counter(ctx, "acme", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	ns, _ := l.Notices(ctx, 0, 10)
	if c.Calls != 810 || len(ns) != 1 || ns[0].Threshold != 80 {
		t.Fatalf("counter %d calls, notices %+v; want 810 and the one 80 %% notice", c.Calls, ns)
	}
}

// TestLedger_PruneOutbox: old delivered and dead records and old notices
// go; a notice still pending for an endpoint, and everything recent, stay.
func TestLedger_PruneOutbox(t *testing.T) {
	ctx := context.Background()
	old := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	now := old.Add(90 * 24 * time.Hour)
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.PutWebhookEndpoint(ctx, meter.WebhookEndpoint{ID: "e", URL: "http://a", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	var ns []meter.Notice
	for i, at := range []time.Time{old, old, old, now} {
		n := meter.BillingNotice(meter.NoticeChargeCreated, "a", old, fmt.Sprint(i), 1, nil)
		n.Time = at
		ns = append(ns, n)
	}
	if err := l.PutNotices(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := l.FanOut(ctx, old, 10); err != nil {
		t.Fatal(err)
	}
	ds, _ := l.PendingDeliveries(ctx, "e", 10)
	ds[0].Status, ds[1].Status = meter.DeliveryDelivered, meter.DeliveryDead // seq 3 stays pending
	for _, d := range ds[:2] {
		if err := l.SaveDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	n, err := l.PruneOutbox(ctx, now.Add(-60*24*time.Hour))
	if err != nil || n != 4 {
		t.Fatalf("pruned %d (%v), want 2 log records and 2 notices", n, err)
	}
	left, _ := l.Notices(ctx, 0, 10)
	if len(left) != 2 || left[0].Seq != 3 || left[1].Seq != 4 {
		t.Fatalf("notices left = %+v, want seq 3 (pending) and 4 (recent)", left)
	}
	if log, _ := l.DeliveryLog(ctx, "e", "", 10); len(log) != 2 {
		t.Fatalf("log after prune = %+v, want the two pending", log)
	}
}

// TestLedger_Outbox_Thresholds: an account's own thresholds win over its
// plan's, which win over the default; calls reported in a batch cross
// lines like tracked ones; spend lines fire on overage cents.
func TestLedger_Outbox_Thresholds(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	plans, err := meter.ParsePlans([]byte("plans:\n  pro: {limit: 100, overage_micros: 100000}\n  free: {limit: 100, hard: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := meter.New(ctx, meter.Config{Store: l, Plans: plans, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	m.SetNotices(&meter.NoticeConfig{Default: meter.DefaultThresholds(),
		Plans:    map[string]meter.Thresholds{"pro": {Percent: []int64{50}, SpendCents: []int64{100}}},
		Accounts: map[string]meter.Thresholds{"special": {Percent: []int64{30}}}}, l)
	for id, plan := range map[string]string{"special": "pro", "proacct": "pro", "freeacct": "free"} {
		if _, err := m.CreateAccount(ctx, meter.Account{ID: id, Name: id, Plan: plan}); err != nil {
			t.Fatal(err)
		}
	}
	trackN(t, m, "special", 40)
	trackN(t, m, "freeacct", 85)
	var batch []meter.BatchCall
	for i := 0; i < 111; i++ { // 11 overage calls at 10 cents: 110 cents
		batch = append(batch, meter.BatchCall{Call: meter.Call{AccountID: "proacct", Endpoint: "/x", Method: "GET", ID: fmt.Sprint(i)}})
	}
	if _, err := m.RecordBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	ns, _ := l.Notices(ctx, 0, 100)
	var got []string
	for _, n := range ns {
		got = append(got, fmt.Sprintf("%s %s %d%s", n.AccountID, n.Type, n.Threshold, n.Unit))
	}
	want := []string{"special usage.threshold_reached 30percent", "freeacct usage.threshold_reached 80percent",
		"proacct usage.threshold_reached 50percent", "proacct usage.overage_started 0", "proacct usage.threshold_reached 100cents"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("notices\n got %v\nwant %v", got, want)
	}
}
