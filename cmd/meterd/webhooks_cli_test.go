package main_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/client"
)

// The webhook admin's transcript against a real meterd and a real
// receiver that checks every signature with the Standard Webhooks
// library: add an endpoint, cross 80 % on a Free account while the
// receiver fails, see the dead delivery, replay it once the receiver is
// back, then disable and delete the endpoint. Exit codes as for the
// other admin commands.
func TestCLI_Webhooks(t *testing.T) {
	dir := t.TempDir()
	p := startCLIServer(t, dir, nil, "--webhook-retry-schedule", "50ms", "--webhook-poll", "50ms")
	env := []string{"METER_SERVER=" + p.base, "METER_DATA_DIR=" + dir}
	recv := newHookReceiver(t)
	recv.fail = 1 // every attempt answers 503 until the test says otherwise

	// $ meterd help webhooks; meterd help webhooks create
	if out := mustCLI(t, env, nil, "help", "webhooks"); !strings.Contains(out, "replay ID --since T") || !strings.Contains(out, "--events") {
		t.Fatalf("help webhooks:\n%s", out)
	}
	if out := mustCLI(t, env, nil, "help", "webhooks", "create"); !strings.Contains(out, "-url") || !strings.Contains(out, "-disabled") {
		t.Fatalf("help webhooks create:\n%s", out)
	}

	// $ meterd webhooks create --url URL --secret S --events usage.threshold_reached --json
	stdout, stderr, code := runCLI(t, env, "webhooks", "create", "--url", recv.srv.URL, "--secret", hookSecret,
		"--events", "usage.threshold_reached", "--description", "quota mails", "--json")
	if code != 0 || !strings.Contains(stderr, "shown this once") {
		t.Fatalf("webhooks create: exit %d\n%s%s", code, stdout, stderr)
	}
	var w client.Webhook
	mustDecode(t, stdout, &w)
	if w.ID == "" || w.Secret != hookSecret || !w.Enabled || len(w.EventTypes) != 1 {
		t.Fatalf("created %+v", w)
	}
	// $ meterd webhooks list
	if out := mustCLI(t, env, nil, "webhooks", "list"); !strings.Contains(out, w.ID) || !strings.Contains(out, "usage.threshold_reached") ||
		!strings.Contains(out, "ENABLED") || strings.Contains(out, hookSecret) {
		t.Fatalf("webhooks list:\n%s", out)
	}
	// $ meterd webhooks get ID (never the secret again)
	if out := mustCLI(t, env, nil, "webhooks", "get", w.ID); !strings.Contains(out, "quota mails") || strings.Contains(out, hookSecret) {
		t.Fatalf("webhooks get:\n%s", out)
	}

	// A Free account makes 800 calls: the 80 % crossing.
	mustCLI(t, env, nil, "accounts", "create", "--id", "acme", "--name", "Acme", "--plan", "free")
	var key client.IssuedKey
	mustCLI(t, env, &key, "keys", "create", "acme", "--json")
	c, err := client.New(p.base)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 800 {
		if d, err := c.Track(ctx, client.Call{APIKey: key.Key, Endpoint: "/v1/x", Method: "GET"}); err != nil || !d.Allowed {
			t.Fatalf("track %d: %+v, %v", i, d, err)
		}
	}

	// $ meterd webhooks deliveries ID --json: dead after two attempts.
	var ds []client.Delivery
	waitUntil(t, 15*time.Second, "a dead delivery", func() bool {
		mustCLI(t, env, &ds, "webhooks", "deliveries", w.ID, "--json")
		return len(ds) == 1 && ds[0].Status == "dead"
	})
	if d := ds[0]; d.EventType != "usage.threshold_reached" || d.AccountID != "acme" || d.Attempts != 2 || d.LastStatus != 503 {
		t.Fatalf("dead delivery %+v", d)
	}
	if out := mustCLI(t, env, nil, "webhooks", "deliveries", w.ID, "--status", "dead"); !strings.Contains(out, "dead") ||
		!strings.Contains(out, "503") || !strings.Contains(out, ds[0].NoticeID) {
		t.Fatalf("deliveries table:\n%s", out)
	}

	// The receiver is back: $ meterd webhooks replay ID --since 1h
	recv.mu.Lock()
	recv.fail = 0
	recv.mu.Unlock()
	if out := mustCLI(t, env, nil, "webhooks", "replay", w.ID, "--since", "1h"); !strings.Contains(out, "replaying 1 ") {
		t.Fatalf("replay:\n%s", out)
	}
	waitUntil(t, 15*time.Second, "the replayed delivery", func() bool { return recv.distinct() == 1 })
	if k := recv.kinds(); k["acme/usage.threshold_reached/80"] != 1 {
		t.Fatalf("receiver got %v", k)
	}
	waitUntil(t, 5*time.Second, "delivered in the log", func() bool {
		mustCLI(t, env, &ds, "webhooks", "deliveries", w.ID, "--json")
		return len(ds) == 1 && ds[0].Status == "delivered" && ds[0].NoticeID == recv.ids()[0]
	})

	// $ meterd webhooks update ID --enabled=false --json
	var off client.Webhook
	mustCLI(t, env, &off, "webhooks", "update", w.ID, "--enabled=false", "--json")
	if off.Enabled || off.Secret != "" || off.ID != w.ID {
		t.Fatalf("disabled %+v", off)
	}

	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"webhooks", "get", "wh_nope"}, 3},
		{[]string{"webhooks", "delete", w.ID}, 2},                              // no --yes
		{[]string{"webhooks", "replay", w.ID}, 2},                              // no --since
		{[]string{"webhooks", "update", w.ID}, 2},                              // nothing to change
		{[]string{"webhooks", "create", "--url", "ftp://example.com/hook"}, 1}, // 400 invalid
		{[]string{"webhooks", "list", "--admin-token", "wrong"}, 4},            // not authorized
		{[]string{"webhooks", "frobnicate"}, 2},                                // unknown verb
	} {
		if _, stderr, code := runCLI(t, env, c.args...); code != c.code {
			t.Errorf("meterd %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.code, stderr)
		}
	}
	// $ meterd webhooks delete ID --yes
	if out := mustCLI(t, env, nil, "webhooks", "delete", w.ID, "--yes"); !strings.Contains(out, "deleted "+w.ID) {
		t.Fatalf("delete:\n%s", out)
	}
	if _, _, code := runCLI(t, env, "webhooks", "get", w.ID); code != 3 {
		t.Fatalf("get after delete: exit %d", code)
	}
}

func mustDecode(t *testing.T, s string, out any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), out); err != nil {
		t.Fatalf("decode: %v\n%s", err, s)
	}
}

// ids are the distinct webhook-ids the receiver accepted.
func (r *hookReceiver) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.byID))
	for id := range r.byID {
		out = append(out, id)
	}
	return out
}
