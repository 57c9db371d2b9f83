package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/client"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

const adminToken = "mat_client-test-admin-token"

// mustServer runs meterd's HTTP API over a real ledger; front, if set,
// wraps its handler (to inject faults).
func mustServer(tb testing.TB, front func(http.Handler) http.Handler) (*meter.Meter, *httptest.Server) {
	tb.Helper()
	l, err := ledger.Open(filepath.Join(tb.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	m, err := meter.New(context.Background(), meter.Config{Store: l})
	if err != nil {
		tb.Fatal(err)
	}
	var h http.Handler = httpapi.New(httpapi.Config{Meter: m, AdminToken: adminToken, Usage: l,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler()
	if front != nil {
		h = front(h)
	}
	srv := httptest.NewServer(h)
	tb.Cleanup(func() { srv.Close(); l.Close() })
	return m, srv
}

func mustClient(tb testing.TB, url string) *client.Client {
	tb.Helper()
	c, err := client.New(url, client.WithAdminToken(adminToken), client.WithRetries(3, 10*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// The first track reaches meterd and is counted, then the connection
// drops before the answer: the retry carries the same idempotency id, so
// meterd answers it as a duplicate and the call counts once.
func TestClient_TrackRetryKeepsIdempotencyID(t *testing.T) {
	var attempts atomic.Int32
	var ids []string
	m, srv := mustServer(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/track" {
				next.ServeHTTP(w, r)
				return
			}
			body, _ := io.ReadAll(r.Body)
			ids = append(ids, string(body))
			r.Body = io.NopCloser(bytes.NewReader(body))
			if attempts.Add(1) == 1 {
				next.ServeHTTP(httptest.NewRecorder(), r) // applied...
				conn, _, _ := http.NewResponseController(w).Hijack()
				conn.Close() // ...but the answer is lost
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	c := mustClient(t, srv.URL)
	ctx := context.Background()
	if _, err := c.CreateAccount(ctx, client.NewAccount{ID: "acme", Name: "Acme", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	k, err := c.IssueKey(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Track(ctx, client.Call{APIKey: k.Key, Endpoint: "/things", Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != 2 || !d.Allowed || !d.Duplicate {
		t.Fatalf("attempts=%d decision=%+v, want 2 attempts and an allowed duplicate", attempts.Load(), d)
	}
	if ids[0] != ids[1] {
		t.Fatalf("retry body differs:\n%s\n%s", ids[0], ids[1])
	}
	if q, _ := m.Quota("acme"); q.Calls != 1 {
		t.Fatalf("calls = %d, want 1", q.Calls)
	}
}

// A 503 is retried (meterd applied nothing); other errors are not.
func TestClient_Retries503Only(t *testing.T) {
	var n atomic.Int32
	_, srv := mustServer(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/admin/accounts/acme/keys" && n.Add(1) == 1 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"error":{"code":"overloaded","message":"busy"}}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	c := mustClient(t, srv.URL)
	ctx := context.Background()
	if _, err := c.CreateAccount(ctx, client.NewAccount{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.IssueKey(ctx, "acme"); err != nil || n.Load() != 2 {
		t.Fatalf("issue key after a 503: %v (attempts %d)", err, n.Load())
	}
	_, err := c.GetAccount(ctx, "nope")
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "account_not_found" {
		t.Fatalf("get unknown account: %v", err)
	}
}

func TestClient_AdminAndDenials(t *testing.T) {
	_, srv := mustServer(t, nil)
	c := mustClient(t, srv.URL)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := c.CreateAccount(ctx, client.NewAccount{ID: id, Name: id, Plan: "free"}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := c.ListAccounts(ctx, client.ListOptions{Limit: 2})
	if err != nil || len(p.Accounts) != 2 || p.NextCursor != "b" {
		t.Fatalf("page 1: %+v, %v", p, err)
	}
	all, err := c.AllAccounts(ctx, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	k, _ := c.IssueKey(ctx, "a")
	if _, err := c.SuspendAccount(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	d, err := c.Track(ctx, client.Call{APIKey: k.Key, Endpoint: "/x", Method: "GET"})
	if err != nil || d.Allowed || d.Code != "account_suspended" || d.Status != 403 {
		t.Fatalf("suspended track: %+v, %v", d, err)
	}
	d, err = c.Authorize(ctx, k.Key, "GET", "/x")
	if err != nil || d.Allowed || d.Code != "account_suspended" {
		t.Fatalf("suspended authz: %+v, %v", d, err)
	}
	if _, err := c.ResumeAccount(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Authorize(ctx, k.Key, "GET", "/x"); err != nil || !d.Allowed {
		t.Fatalf("authz: %+v, %v", d, err)
	}
	res, err := c.Events(ctx, []client.Event{{Call: client.Call{APIKey: k.Key, Endpoint: "/y", Method: "POST"}}})
	if err != nil || res.Accepted != 1 {
		t.Fatalf("events: %+v, %v", res, err)
	}
	u, err := c.UsageOf(ctx, "a")
	if err != nil || u.APICalls != 2 || u.DeniedCalls != 2 {
		t.Fatalf("usage: %+v, %v", u, err)
	}
	a, err := c.DeleteAccount(ctx, "a")
	if err != nil || a.Status() != "deleted" || a.Keys[0].RevokedAt == nil {
		t.Fatalf("delete: %+v, %v", a, err)
	}
	if _, err := c.Track(ctx, client.Call{APIKey: k.Key, Endpoint: "/x", Method: "GET"}); !client.IsCode(err, "invalid_api_key") {
		t.Fatalf("track with a deleted account's key: %v", err)
	}
	if days, err := c.HistoryOf(ctx, "a", 3); err != nil || len(days) != 3 {
		t.Fatalf("history of a deleted account: %v, %v", days, err)
	}
}
