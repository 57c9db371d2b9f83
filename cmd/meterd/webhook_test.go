package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookReceiver is a real HTTP receiver that verifies every delivery with
// the Standard Webhooks reference library and dedupes by webhook-id, as
// a receiver is told to.
type hookReceiver struct {
	t   *testing.T
	srv *httptest.Server
	wh  *standardwebhooks.Webhook
	// delay and fail make it slow and flaky, so kills land mid-delivery.
	delay time.Duration
	fail  float64

	mu       sync.Mutex
	byID     map[string]hookEvent
	attempts int
}

type hookEvent struct {
	Type string `json:"type"`
	Data struct {
		AccountID string `json:"account_id"`
		Threshold int64  `json:"threshold"`
		Calls     int64  `json:"calls"`
	} `json:"data"`
}

func (e hookEvent) kind() string {
	return fmt.Sprintf("%s/%s/%d", e.Data.AccountID, e.Type, e.Data.Threshold)
}

func newHookReceiver(t *testing.T) *hookReceiver {
	wh, err := standardwebhooks.NewWebhook(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{t: t, wh: wh, byID: map[string]hookEvent{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.t.Errorf("reference library rejected a delivery: %v", err)
		w.WriteHeader(400)
		return
	}
	if r.delay > 0 {
		time.Sleep(time.Duration(rand.Int64N(int64(r.delay))))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if rand.Float64() < r.fail {
		w.WriteHeader(503)
		return
	}
	var ev hookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		r.t.Errorf("payload: %v", err)
	}
	r.byID[req.Header.Get("webhook-id")] = ev
	w.WriteHeader(204)
}

// kinds counts distinct webhook-ids per account/type/threshold.
func (r *hookReceiver) kinds() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, ev := range r.byID {
		out[ev.kind()]++
	}
	return out
}

func (r *hookReceiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}

func addEndpoint(t *testing.T, base, url string) {
	t.Helper()
	if code := do(t, "POST", base+"/api/admin/webhooks", adminToken,
		map[string]any{"url": url, "secret": hookSecret}, nil); code != 201 {
		t.Fatalf("create webhook: %d", code)
	}
}

func waitUntil(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// trackAll sends n tracks for key from 8 clients, ignoring the answers.
func trackAll(ctx context.Context, base string, keys []string, n int) {
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for c := 0; c < 8; c++ {
		wg.Go(func() {
			for i := c; i < n*len(keys) && ctx.Err() == nil; i += 8 {
				body, _ := json.Marshal(map[string]any{"api_key": keys[i%len(keys)], "endpoint": "/v1/x", "method": "GET"})
				req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/track", bytes.NewReader(body))
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
}

// TestServe_Webhooks_FreeAccount: 1,000 calls and 200 more on a Free
// account make exactly one 80 % event, one 100 % event and one
// limit_reached, each verified by the reference library.
func TestServe_Webhooks_FreeAccount(t *testing.T) {
	rcv := newHookReceiver(t)
	p := startServe(t, t.TempDir(), "--webhook-poll", "20ms")
	p.waitReady(t)
	addEndpoint(t, p.base, rcv.srv.URL)
	key := setupAccount(t, p, "freebie", "free")
	trackAll(context.Background(), p.base, []string{key}, 1200)
	want := map[string]int{"freebie/usage.threshold_reached/80": 1, "freebie/usage.threshold_reached/100": 1,
		"freebie/usage.limit_reached/0": 1}
	waitUntil(t, 10*time.Second, "three deliveries", func() bool { return rcv.distinct() >= 3 })
	time.Sleep(200 * time.Millisecond) // room for a wrong fourth
	if got := rcv.kinds(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deliveries by kind = %v, want %v", got, want)
	}
}

// TestServe_Webhooks_CrashSafety kills meterd with SIGKILL at random
// moments while accounts cross their thresholds and while a slow, flaky
// receiver is being delivered to, for 12 rounds; then, with every
// account pushed past its limit, each crossing must have been delivered
// under exactly one webhook-id, and the outbox must hold each once. In
// async durability a kill may lose acknowledged calls, and their notices
// with them, but then the counter is back under the line too.
func TestServe_Webhooks_CrashSafety(t *testing.T) {
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) { webhookCrashRounds(t, mode) })
	}
}

func webhookCrashRounds(t *testing.T, durability string) {
	dir := t.TempDir()
	plans := filepath.Join(dir, "plans.yaml")
	if err := os.WriteFile(plans, []byte("plans:\n  tiny:\n    limit: 20\n    hard: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rcv := newHookReceiver(t)
	rcv.delay, rcv.fail = 20*time.Millisecond, 0.2
	args := []string{"--durability", durability, "--plans", plans, "--webhook-poll", "10ms", "--webhook-retry-schedule", "20ms,40ms,80ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms"}
	var keys []string
	const rounds = 12
	for round := 0; round < rounds; round++ {
		p := startServe(t, dir, args...)
		p.waitReady(t)
		if round == 0 {
			addEndpoint(t, p.base, rcv.srv.URL)
		}
		for i := 0; i < 3; i++ {
			keys = append(keys, setupAccount(t, p, fmt.Sprintf("r%da%d", round, i), "tiny"))
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { trackAll(ctx, p.base, keys[len(keys)-3:], 25); close(done) }()
		time.Sleep(time.Duration(rand.IntN(120)) * time.Millisecond)
		p.cmd.Process.Kill()
		p.waitExit(t, 10*time.Second)
		cancel()
		<-done
	}
	p := startServe(t, dir, args...)
	p.waitReady(t)
	before := rcv.distinct()
	trackAll(context.Background(), p.base, keys, 25)
	want := 3 * len(keys)
	waitUntil(t, 30*time.Second, fmt.Sprintf("%d distinct deliveries", want), func() bool { return rcv.distinct() >= want })
	time.Sleep(300 * time.Millisecond)
	kinds := rcv.kinds()
	if len(kinds) != want || rcv.distinct() != want {
		t.Fatalf("%d kinds and %d distinct webhook-ids delivered, want %d of each", len(kinds), rcv.distinct(), want)
	}
	for k, n := range kinds {
		if n != 1 {
			t.Errorf("%s delivered under %d webhook-ids", k, n)
		}
	}
	p.cmd.Process.Kill()
	p.waitExit(t, 10*time.Second)
	l, err := ledger.Open(filepath.Join(dir, "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ns, err := l.Notices(context.Background(), 0, 10*want)
	if err != nil || len(ns) != want {
		t.Fatalf("outbox holds %d notices (%v), want %d", len(ns), err, want)
	}
	t.Logf("%d rounds, %d accounts, %d notices (%d delivered before the last start), %d delivery attempts",
		rounds, len(keys), want, before, rcv.attempts)
}

// TestServe_WebhookFlags: a thresholds file with an unknown field or a
// bad retry schedule stops meterd at start with a message naming the flag.
func TestServe_WebhookFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "thresholds.yaml")
	if err := os.WriteFile(bad, []byte("default: {percnt: [80]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for flag, args := range map[string][]string{
		"--webhook-thresholds":     {"--webhook-thresholds", bad},
		"--webhook-retry-schedule": {"--webhook-retry-schedule", "5s,soon"},
		"--webhook-refuse-private": {"--webhook-refuse-private", "maybe"},
	} {
		p := startServe(t, filepath.Join(dir, flag), args...)
		if err := p.waitExit(t, 10*time.Second); err == nil {
			t.Errorf("%s: meterd started", flag)
		}
		if !strings.Contains(p.stderr.String(), flag) {
			t.Errorf("%s: message does not name the flag:\n%s", flag, p.stderr)
		}
	}
}

// TestServe_Webhooks_DeadLetterReplay, through the admin API of a real
// meterd: a receiver that never answers 2xx ends in the dead letter,
// shown by the delivery log; once it answers, a replay delivers it under
// the same webhook-id.
func TestServe_Webhooks_DeadLetterReplay(t *testing.T) {
	rcv := newHookReceiver(t)
	rcv.fail = 1
	p := startServe(t, t.TempDir(), "--webhook-poll", "10ms", "--webhook-retry-schedule", "20ms,20ms")
	p.waitReady(t)
	var ep struct{ ID string }
	if code := do(t, "POST", p.base+"/api/admin/webhooks", adminToken,
		map[string]any{"url": rcv.srv.URL, "secret": hookSecret, "event_types": []string{"account.plan_changed"}}, &ep); code != 201 {
		t.Fatalf("create webhook: %d", code)
	}
	since := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	setupAccount(t, p, "mover", "free")
	if code := do(t, "PATCH", p.base+"/api/admin/accounts/mover", adminToken, map[string]string{"plan": "pro"}, nil); code != 200 {
		t.Fatalf("plan change: %d", code)
	}
	type logEntry struct {
		NoticeID   string `json:"notice_id"`
		Status     string `json:"status"`
		Attempts   int    `json:"attempts"`
		LastStatus int    `json:"last_status"`
	}
	var log struct{ Deliveries []logEntry }
	waitUntil(t, 10*time.Second, "the dead letter", func() bool {
		do(t, "GET", p.base+"/api/admin/webhooks/"+ep.ID+"/deliveries?status=dead", adminToken, nil, &log)
		return len(log.Deliveries) == 1
	})
	if d := log.Deliveries[0]; d.Attempts != 3 || d.LastStatus != 503 {
		t.Fatalf("dead letter = %+v, want 3 attempts ending in 503", d)
	}
	rcv.mu.Lock()
	rcv.fail = 0
	rcv.mu.Unlock()
	var rep struct{ Replayed int }
	if code := do(t, "POST", p.base+"/api/admin/webhooks/"+ep.ID+"/replay?since="+since, adminToken, nil, &rep); code != 200 || rep.Replayed != 1 {
		t.Fatalf("replay: %d %+v", code, rep)
	}
	waitUntil(t, 10*time.Second, "the replayed delivery", func() bool { return rcv.distinct() == 1 })
	rcv.mu.Lock()
	_, ok := rcv.byID[log.Deliveries[0].NoticeID]
	rcv.mu.Unlock()
	if !ok {
		t.Fatalf("replay delivered another webhook-id than the dead letter's %s", log.Deliveries[0].NoticeID)
	}
}

// TestServe_WebhookRefusePrivate: with --listen on loopback (every test
// here) "auto" lets a loopback receiver in; refusing private addresses
// turns it away with 400.
func TestServe_WebhookRefusePrivate(t *testing.T) {
	p := startServe(t, t.TempDir(), "--webhook-refuse-private", "true")
	p.waitReady(t)
	var e struct {
		Error struct{ Code, Message string }
	}
	if code := do(t, "POST", p.base+"/api/admin/webhooks", adminToken, map[string]any{"url": "http://127.0.0.1:9/hook"}, &e); code != 400 || !strings.Contains(e.Error.Message, "internal") {
		t.Fatalf("loopback URL with private addresses refused: %d %+v", code, e)
	}
	if code := do(t, "POST", p.base+"/api/admin/webhooks", adminToken, map[string]any{"url": "https://hooks.example.com/x"}, nil); code != 201 {
		t.Fatalf("public URL: %d", code)
	}
}
