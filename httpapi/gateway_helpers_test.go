package httpapi_test

// Harness of the gateway tests (proxy, forward auth, batch events, Go
// middleware). It is self-contained, and its names start with gw, so it
// does not depend on the shared helpers changing under it.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

const (
	gwAdminToken = "mat_gateway-test-admin-7c1e55b0a9d3"
	// gwTimeout bounds every round trip, so a hang fails a test instead
	// of the whole package timing out.
	gwTimeout = 30 * time.Second
)

// gwNow is the meter's frozen clock in these tests: the open period is
// March 2026.
var gwNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// gwServer is a real meter on a real bbolt ledger with meterd's HTTP API
// on 127.0.0.1.
type gwServer struct {
	tb     testing.TB
	Ledger *ledger.Ledger
	Meter  *meter.Meter
	HTTP   *httptest.Server
	Client *http.Client
	Logs   *logBuffer
}

// gwOptions change how mustGWServer builds a server.
type gwOptions struct {
	plans        string // plans file text ("" for the defaults)
	async        bool
	serviceToken string
}

func mustGWServer(tb testing.TB, o gwOptions) *gwServer {
	tb.Helper()
	plans := meter.DefaultPlans()
	if o.plans != "" {
		p, err := meter.ParsePlans([]byte(o.plans))
		if err != nil {
			tb.Fatalf("plans: %v", err)
		}
		plans = p
	}
	l, err := ledger.Open(filepath.Join(tb.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		tb.Fatalf("open ledger: %v", err)
	}
	m, err := meter.New(context.Background(), meter.Config{Store: l, Plans: plans,
		Now: func() time.Time { return gwNow }, Async: o.async})
	if err != nil {
		l.Close()
		tb.Fatalf("new meter: %v", err)
	}
	logs := &logBuffer{}
	api := httpapi.New(httpapi.Config{Meter: m, AdminToken: gwAdminToken, ServiceToken: o.serviceToken,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)), Usage: l})
	s := &gwServer{tb: tb, Ledger: l, Meter: m, HTTP: httptest.NewServer(conformance(tb, api.Handler())), Logs: logs,
		Client: gwClient()}
	tb.Cleanup(func() {
		s.Client.CloseIdleConnections()
		s.HTTP.Close()
		if err := l.Close(); err != nil {
			tb.Errorf("close ledger: %v", err)
		}
	})
	return s
}

// gwClient is a keep-alive client with a bounded round trip.
func gwClient() *http.Client {
	return &http.Client{Timeout: gwTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// mustAccountKey creates an account on plan and returns a key for it.
func (s *gwServer) mustAccountKey(id, plan string) string {
	s.tb.Helper()
	ctx := context.Background()
	if _, err := s.Meter.CreateAccount(ctx, meter.Account{ID: id, Name: id, Plan: plan}); err != nil {
		s.tb.Fatalf("create account %s: %v", id, err)
	}
	_, key, err := s.Meter.IssueKey(ctx, id)
	if err != nil {
		s.tb.Fatalf("issue key for %s: %v", id, err)
	}
	return key
}

// quota is the account's live usage.
func (s *gwServer) quota(account string) meter.Quota {
	s.tb.Helper()
	q, err := s.Meter.Quota(account)
	if err != nil {
		s.tb.Fatalf("quota of %s: %v", account, err)
	}
	return q
}

// events returns every event of account in the ledger, oldest first.
func (s *gwServer) events(account string) []meter.Event {
	s.tb.Helper()
	if err := s.Ledger.Flush(context.Background()); err != nil {
		s.tb.Fatalf("flush: %v", err)
	}
	all, err := s.Ledger.EventsAfter(context.Background(), 0, 1<<20)
	if err != nil {
		s.tb.Fatalf("events: %v", err)
	}
	var out []meter.Event
	for _, ev := range all {
		if ev.AccountID == account {
			out = append(out, ev)
		}
	}
	return out
}

// gwEndpoint is one row of GET /api/usage/endpoints.
type gwEndpoint struct {
	Endpoint     string  `json:"endpoint"`
	Method       string  `json:"method"`
	APICalls     int64   `json:"api_calls"`
	Errors       int64   `json:"errors"`
	ClientErrors int64   `json:"client_errors"`
	AvgLatencyMS float64 `json:"avg_latency_ms"`
}

// endpoints reads an account's per-endpoint usage over HTTP, keyed by
// "METHOD /template".
func (s *gwServer) endpoints(account string) map[string]gwEndpoint {
	s.tb.Helper()
	resp := gwMustDo(s.tb, s.Client, http.MethodGet, s.HTTP.URL+"/api/usage/endpoints?account_id="+account,
		map[string]string{"Authorization": "Bearer " + gwAdminToken}, "")
	if resp.Status != http.StatusOK {
		s.tb.Fatalf("endpoints of %s: %d %s", account, resp.Status, resp.Body)
	}
	var body struct {
		Endpoints []gwEndpoint `json:"endpoints"`
	}
	gwUnmarshal(s.tb, resp.Body, &body)
	out := map[string]gwEndpoint{}
	for _, e := range body.Endpoints {
		out[e.Method+" "+e.Endpoint] = e
	}
	return out
}

// gwUpstream is a tiny API behind the proxy or a gateway: it counts the
// requests that reach it and keeps the last one.
type gwUpstream struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	last *http.Request
}

// mustUpstream serves h (default: 200 "ok from upstream") on 127.0.0.1.
func mustUpstream(tb testing.TB, h http.HandlerFunc) *gwUpstream {
	tb.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok from upstream") }
	}
	u := &gwUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.last = r.Clone(context.Background())
		u.mu.Unlock()
		h(w, r)
	}))
	tb.Cleanup(u.Close)
	return u
}

// Last is the last request the upstream saw.
func (u *gwUpstream) Last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// mustProxy serves a metering proxy for s's meter in front of
// upstreamURL on 127.0.0.1.
func (s *gwServer) mustProxy(upstreamURL string, edit ...func(*httpapi.ProxyConfig)) *httptest.Server {
	s.tb.Helper()
	cfg := httpapi.ProxyConfig{Meter: s.Meter, Upstream: upstreamURL,
		Logger: slog.New(slog.NewJSONHandler(s.Logs, nil))}
	for _, e := range edit {
		e(&cfg)
	}
	h, err := httpapi.NewProxy(cfg)
	if err != nil {
		s.tb.Fatalf("new proxy: %v", err)
	}
	ps := httptest.NewServer(h)
	s.tb.Cleanup(ps.Close)
	return ps
}

// gwResponse is an HTTP answer read in full.
type gwResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// gwDo sends a request and reads the whole answer; it does not touch a
// testing.TB, so goroutines may call it.
func gwDo(client *http.Client, method, url string, header map[string]string, body string) (gwResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), gwTimeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return gwResponse{}, err
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return gwResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return gwResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}

func gwMustDo(tb testing.TB, client *http.Client, method, url string, header map[string]string, body string) gwResponse {
	tb.Helper()
	resp, err := gwDo(client, method, url, header, body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// gwDoConcurrently sends n GETs of url from workers goroutines and counts
// the answers by status (-1 for transport errors).
func gwDoConcurrently(client *http.Client, url string, header map[string]string, n, workers int) map[int]int {
	var next atomic.Int64
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := gwDo(client, http.MethodGet, url, header, "")
				status := resp.Status
				if err != nil {
					status = -1
				}
				mu.Lock()
				codes[status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return codes
}

func gwUnmarshal(tb testing.TB, b []byte, v any) {
	tb.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		if len(b) > 300 {
			b = b[:300]
		}
		tb.Fatalf("decode %q: %v", b, err)
	}
}

func gwJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// gwErrorCode checks resp is a JSON error with status and returns its code.
func gwErrorCode(tb testing.TB, resp gwResponse, status int) string {
	tb.Helper()
	if resp.Status != status {
		tb.Fatalf("status %d, want %d: %s", resp.Status, status, resp.Body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type %q, want application/json", ct)
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	gwUnmarshal(tb, resp.Body, &body)
	if body.Error.Code == "" || body.Error.Message == "" {
		tb.Errorf("error body %s: want a code and a message", resp.Body)
	}
	return body.Error.Code
}

// gwRateLimitHeaders are the fields every decided call carries.
var gwRateLimitHeaders = []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
	"Retry-After", "RateLimit-Policy", "RateLimit", "X-RateLimit-Warning"}

// gwPick returns the named fields of h ("" when absent).
func gwPick(h http.Header, names []string) map[string]string {
	out := make(map[string]string, len(names))
	for _, n := range names {
		out[n] = h.Get(n)
	}
	return out
}

// gwWantHeaders checks each field's value; "" means absent.
func gwWantHeaders(tb testing.TB, h http.Header, want map[string]string) {
	tb.Helper()
	for name, v := range want {
		if got := h.Get(name); got != v {
			tb.Errorf("header %s = %q, want %q", name, got, v)
		}
	}
}
