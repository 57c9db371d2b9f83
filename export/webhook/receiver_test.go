package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/export/webhook"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// receiver is a real HTTP endpoint that verifies every delivery with the
// Standard Webhooks reference library and records it.
type receiver struct {
	t   testing.TB
	srv *httptest.Server
	wh  *standardwebhooks.Webhook

	mu sync.Mutex
	// status answers deliveries (default 204); got lists the verified ones.
	status func(id string) int
	got    []delivery
	bad    int
}

type delivery struct {
	ID      string
	At      time.Time
	Type    meter.NoticeType
	Account string
	Data    meter.Notice
	Status  int
}

func newReceiver(t testing.TB, secret string) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, wh: wh}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.mu.Lock()
		r.bad++
		r.mu.Unlock()
		r.t.Errorf("signature rejected by the reference library: %v", err)
		w.WriteHeader(400)
		return
	}
	var p struct {
		Type meter.NoticeType `json:"type"`
		Data meter.Notice     `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("payload: %v", err)
	}
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	defer r.mu.Unlock()
	status := 204
	if r.status != nil {
		status = r.status(id)
	}
	r.got = append(r.got, delivery{ID: id, At: time.Now(), Type: p.Type, Account: p.Data.AccountID, Data: p.Data, Status: status})
	w.WriteHeader(status)
}

func (r *receiver) setStatus(fn func(id string) int) {
	r.mu.Lock()
	r.status = fn
	r.mu.Unlock()
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// accepted returns the 2xx-answered deliveries.
func (r *receiver) accepted() []delivery {
	var out []delivery
	for _, d := range r.deliveries() {
		if d.Status < 300 {
			out = append(out, d)
		}
	}
	return out
}

type fixture struct {
	l     *ledger.Ledger
	admin *webhook.Admin
	d     *webhook.Dispatcher
}

func newFixture(t *testing.T, schedule []time.Duration) *fixture {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := webhook.New(webhook.Config{Store: l, Schedule: schedule, Poll: 10 * time.Millisecond, Timeout: 2 * time.Second})
	t.Cleanup(func() { d.Close(); l.Close() })
	return &fixture{l: l, admin: webhook.NewAdmin(l, nil, false, 0), d: d}
}

func (f *fixture) endpoint(t *testing.T, url, secret string) meter.WebhookEndpoint {
	t.Helper()
	e, _, err := f.admin.CreateEndpoint(context.Background(), meter.WebhookEndpoint{URL: url, Enabled: true}, secret)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
