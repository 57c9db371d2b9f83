package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/client"
	"github.com/meterd/meterd/export/webhook"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// receiver is a real webhook receiver whose answer the test switches.
type receiver struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	ids    []string
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{}
	r.status.Store(int32(status))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		s := int(r.status.Load())
		if s < 300 {
			r.mu.Lock()
			r.ids = append(r.ids, req.Header.Get("webhook-id"))
			r.mu.Unlock()
		}
		w.WriteHeader(s)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

// mustWebhookServer runs meterd's API with webhooks on: notices stored in
// the ledger, a dispatcher retrying once after 10ms and then giving up.
func mustWebhookServer(t *testing.T) (*meter.Meter, *httptest.Server) {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := meter.New(context.Background(), meter.Config{Store: l})
	if err != nil {
		t.Fatal(err)
	}
	m.SetNotices(&meter.NoticeConfig{Default: meter.DefaultThresholds()}, l)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := webhook.New(webhook.Config{Store: l, Schedule: []time.Duration{10 * time.Millisecond}, Poll: 10 * time.Millisecond, Logger: log})
	d.Start()
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Meter: m, AdminToken: adminToken, Usage: l, Logger: log,
		Webhooks: webhook.NewAdmin(l, nil, false, 0)}).Handler())
	t.Cleanup(func() { srv.Close(); d.Close(); l.Close() })
	return m, srv
}

// waitDeliveries polls the delivery log until ok accepts it.
func waitDeliveries(t *testing.T, c *client.Client, id string, ok func([]client.Delivery) bool) []client.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds, err := c.Deliveries(context.Background(), id, client.DeliveryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ok(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries never as wanted: %+v", ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClient_Webhooks: create, read, list, update an endpoint; a notice
// that the receiver refuses ends dead in the delivery log, a replay
// delivers it with the same webhook-id; delete makes it 404.
func TestClient_Webhooks(t *testing.T) {
	m, srv := mustWebhookServer(t)
	c := mustClient(t, srv.URL)
	ctx := context.Background()
	recv := newReceiver(t, http.StatusInternalServerError)

	w, err := c.CreateWebhook(ctx, client.NewWebhook{URL: recv.srv.URL, Description: "ops",
		EventTypes: []string{"account.plan_changed"}})
	if err != nil || w.ID == "" || len(w.Secret) < 10 || !w.Enabled {
		t.Fatalf("create: %+v, %v", w, err)
	}
	got, err := c.GetWebhook(ctx, w.ID)
	if err != nil || got.URL != recv.srv.URL || got.Secret != "" || len(got.EventTypes) != 1 {
		t.Fatalf("get: %+v, %v", got, err)
	}
	list, err := c.ListWebhooks(ctx)
	if err != nil || len(list) != 1 || list[0].ID != w.ID {
		t.Fatalf("list: %+v, %v", list, err)
	}
	desc := "ops team"
	if up, err := c.UpdateWebhook(ctx, w.ID, client.WebhookPatch{Description: &desc}); err != nil || up.Description != desc || up.Secret != "" {
		t.Fatalf("update: %+v, %v", up, err)
	}
	var ce *client.Error
	if up, err := c.UpdateWebhook(ctx, w.ID, client.WebhookPatch{RotateSecret: true}); err != nil || up.Secret == "" || up.Secret == w.Secret {
		t.Fatalf("rotate: %+v, %v", up, err)
	}
	if _, err := c.CreateWebhook(ctx, client.NewWebhook{URL: "ftp://example.com/"}); !errors.As(err, &ce) || ce.Status != http.StatusBadRequest {
		t.Fatalf("ftp URL accepted")
	}

	start := time.Now().Add(-time.Minute)
	if _, err := m.CreateAccount(ctx, meter.Account{ID: "acme", Name: "Acme", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	pro := "pro"
	if _, err := m.UpdateAccount(ctx, "acme", meter.AccountPatch{Plan: &pro}); err != nil {
		t.Fatal(err)
	}
	dead := waitDeliveries(t, c, w.ID, func(ds []client.Delivery) bool { return len(ds) == 1 && ds[0].Status == "dead" })
	if d := dead[0]; d.EventType != "account.plan_changed" || d.AccountID != "acme" || d.Attempts != 2 || d.LastStatus != 500 {
		t.Fatalf("dead delivery: %+v", d)
	}
	if ds, err := c.Deliveries(ctx, w.ID, client.DeliveryOptions{Status: "delivered"}); err != nil || len(ds) != 0 {
		t.Fatalf("delivered filter: %+v, %v", ds, err)
	}

	recv.status.Store(http.StatusNoContent)
	if n, err := c.ReplayWebhook(ctx, w.ID, start, false); err != nil || n != 1 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	waitDeliveries(t, c, w.ID, func(ds []client.Delivery) bool { return len(ds) == 1 && ds[0].Status == "delivered" })
	if ids := recv.got(); len(ids) != 1 || ids[0] != dead[0].NoticeID {
		t.Fatalf("receiver got %v, want [%s]", ids, dead[0].NoticeID)
	}

	if err := c.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetWebhook(ctx, w.ID); !errors.As(err, &ce) || ce.Status != http.StatusNotFound {
		t.Fatalf("get after delete: %v", err)
	}
}
