package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// A Go service wraps its handlers; calls beyond the Free plan's 1,000
// get a 429 without reaching them.
func ExampleMiddleware() {
	dir, err := os.MkdirTemp("", "meterd-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	l, err := ledger.Open(filepath.Join(dir, "meter.db"), ledger.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	m, err := meter.New(ctx, meter.Config{Store: l})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := m.CreateAccount(ctx, meter.Account{ID: "acct_demo", Name: "Demo", Plan: "free"}); err != nil {
		log.Fatal(err)
	}
	_, key, err := m.IssueKey(ctx, "acct_demo")
	if err != nil {
		log.Fatal(err)
	}

	api := http.NewServeMux()
	api.HandleFunc("GET /v1/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, _ := httpapi.DecisionFrom(r.Context())
		fmt.Fprintf(w, "thing %s for %s", r.PathValue("id"), d.AccountID)
	})
	srv := httptest.NewServer(httpapi.Middleware(m)(api))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/things/42", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	fmt.Println("limit", resp.Header.Get("X-RateLimit-Limit"), "remaining", resp.Header.Get("X-RateLimit-Remaining"))
	fmt.Println(resp.Header.Get("RateLimit-Policy") != "")
	// Output:
	// 200 thing 42 for acct_demo
	// limit 1000 remaining 999
	// true
}

func TestMiddleware_RecordsHandlerAnswer(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{plans: "plans:\n  free: {limit: 10, hard: true}\n"})
	key := s.mustAccountKey("acct_mw", "free")
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/created", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	mux.HandleFunc("/v1/silent", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/v1/panic", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/v1/flush", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part")
		http.NewResponseController(w).Flush()
		io.WriteString(w, "ial")
	})
	mux.HandleFunc("/v1/early", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("/v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		d, ok := httpapi.DecisionFrom(r.Context())
		fmt.Fprintf(w, "%v %s %s %q", ok, d.AccountID, d.Plan, r.Header.Get("X-API-Key"))
	})
	mux.HandleFunc("/v1/socket", echoUpgrade)
	srv := httptest.NewServer(httpapi.Middleware(s.Meter, httpapi.WithStripKey())(mux))
	t.Cleanup(srv.Close)
	hdr := map[string]string{"X-API-Key": key}
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/v1/created", 201, ""},
		{"/v1/silent", 200, ""},
		{"/v1/flush", 200, "partial"},
		{"/v1/early", 202, ""},
		{"/v1/whoami", 200, `true acct_mw free ""`},
	}
	for i, tt := range tests {
		resp := gwMustDo(t, s.Client, http.MethodGet, srv.URL+tt.path, hdr, "")
		if resp.Status != tt.status || string(resp.Body) != tt.body {
			t.Errorf("%s: %d %q, want %d %q", tt.path, resp.Status, resp.Body, tt.status, tt.body)
		}
		if got, want := resp.Header.Get("X-RateLimit-Remaining"), fmt.Sprint(9-i); got != want {
			t.Errorf("%s: remaining %q, want %q", tt.path, got, want)
		}
	}
	// POST: the client would retry a GET on a reused connection.
	if _, err := gwDo(s.Client, http.MethodPost, srv.URL+"/v1/panic", hdr, "{}"); err == nil {
		t.Error("a panicking handler's connection was not aborted")
	}
	// The handler writes its own 101 on the hijacked connection, so the
	// rate-limit headers are only offered to it in w.Header().
	checkUpgrade(t, srv.Listener.Addr().String(), key, "")
	evs := s.events("acct_mw")
	want := []int{201, 200, 200, 202, 200, 500, 101}
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d", len(evs), len(want))
	}
	for i, ev := range evs {
		if ev.Status != want[i] {
			t.Errorf("event %d (%s) status %d, want %d", i, ev.Endpoint, ev.Status, want[i])
		}
	}
}

func TestMiddleware_Denials(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{plans: "plans:\n  free: {limit: 1, hard: true}\n"})
	key := s.mustAccountKey("acct_mwd", "free")
	reached := 0
	h := httpapi.Middleware(s.Meter, httpapi.WithKeyHeader("X-Token"), httpapi.WithKeyQuery("token"),
		httpapi.WithEndpoint(func(r *http.Request) string { return "/fixed" }))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tests := []struct {
		name   string
		path   string
		header map[string]string
		status int
		code   string
	}{
		{"NoKey", "/a", nil, 401, "unauthorized"},
		{"KeyInQuery", "/a?token=" + key, nil, 200, ""},
		{"QuotaViaHeader", "/b", map[string]string{"X-Token": key}, 429, "quota_exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := gwMustDo(t, s.Client, http.MethodGet, srv.URL+tt.path, tt.header, "")
			if tt.code == "" {
				if resp.Status != tt.status {
					t.Fatalf("status %d, want %d", resp.Status, tt.status)
				}
				return
			}
			if code := gwErrorCode(t, resp, tt.status); code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
		})
	}
	if reached != 1 {
		t.Errorf("handler ran %d times, want once", reached)
	}
	for _, ev := range s.events("acct_mwd") {
		if ev.Endpoint != "/fixed" {
			t.Errorf("endpoint %q, want /fixed from WithEndpoint", ev.Endpoint)
		}
	}
	if s.quota("acct_mwd").Denied != 1 {
		t.Errorf("denied %d, want 1", s.quota("acct_mwd").Denied)
	}
}
