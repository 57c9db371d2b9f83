package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/meterd/meterd/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// testAdminToken guards /api/admin/* on every test server.
const testAdminToken = "mat_test-admin-token-9f2c41d7e85a06b3"

// requestTimeout bounds every HTTP round trip a test makes, so a hung
// server fails the test instead of the whole package timing out.
const requestTimeout = 30 * time.Second

// testClock is the meter's injected clock: tests set and advance it to
// cross period and day boundaries without waiting.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock(t time.Time) *testClock { return &testClock{now: t} }

// Now returns the clock's reading.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t, backwards if need be.
func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Advance moves the clock by d (negative d steps it back).
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// logBuffer collects slog output from request goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serverConfig is what the ServerOptions set; MustReopen reuses it.
type serverConfig struct {
	path   string
	clock  *testClock
	plans  *meter.Plans
	async  bool
	ledger ledger.Options
	logs   *logBuffer
}

// ServerOption changes how MustOpenServer builds a server.
type ServerOption func(*serverConfig)

// WithClock uses c as the meter's clock (default: a clock frozen at
// 2026-03-10 12:00:00Z).
func WithClock(c *testClock) ServerOption { return func(o *serverConfig) { o.clock = c } }

// WithPlans replaces the default plans.
func WithPlans(p *meter.Plans) ServerOption { return func(o *serverConfig) { o.plans = p } }

// WithLedgerOptions passes opts to ledger.Open.
func WithLedgerOptions(opts ledger.Options) ServerOption {
	return func(o *serverConfig) { o.ledger = opts }
}

// WithAsync answers calls once queued rather than once committed.
func WithAsync() ServerOption { return func(o *serverConfig) { o.async = true } }

// mustParsePlans builds plans from a plans file's text.
func mustParsePlans(tb testing.TB, text string) *meter.Plans {
	tb.Helper()
	p, err := meter.ParsePlans([]byte(text))
	if err != nil {
		tb.Fatalf("parse plans: %v", err)
	}
	return p
}

// TestServer is a real meterd HTTP API over a real bbolt ledger.
type TestServer struct {
	tb     testing.TB
	cfg    serverConfig
	Clock  *testClock
	Logs   *logBuffer
	Ledger *ledger.Ledger
	Meter  *meter.Meter
	API    *httpapi.Server
	HTTP   *httptest.Server
	Client *http.Client

	closeOnce sync.Once
}

// MustOpenServer opens a ledger in tb's temp dir, a meter on it with an
// injected clock, and serves the API on 127.0.0.1 with the admin token,
// real metrics and debug logs captured in Logs. Cleanup closes it all.
func MustOpenServer(tb testing.TB, opts ...ServerOption) *TestServer {
	tb.Helper()
	cfg := serverConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.path == "" {
		cfg.path = filepath.Join(tb.TempDir(), "meter.db")
	}
	if cfg.clock == nil {
		cfg.clock = newTestClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	}
	if cfg.plans == nil {
		cfg.plans = meter.DefaultPlans()
	}
	cfg.logs = &logBuffer{}
	return openServer(tb, cfg)
}

func openServer(tb testing.TB, cfg serverConfig) *TestServer {
	tb.Helper()
	l, err := ledger.Open(cfg.path, cfg.ledger)
	if err != nil {
		tb.Fatalf("open ledger: %v", err)
	}
	m, err := meter.New(context.Background(), meter.Config{Store: l, Plans: cfg.plans,
		Now: cfg.clock.Now, Async: cfg.async})
	if err != nil {
		l.Close()
		tb.Fatalf("new meter: %v", err)
	}
	reg := prometheus.NewRegistry()
	api := httpapi.New(httpapi.Config{Meter: m, AdminToken: testAdminToken,
		Logger:   slog.New(slog.NewJSONHandler(cfg.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Observer: metrics.New(reg), Usage: l,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})})
	hs := httptest.NewServer(conformance(tb, api.Handler()))
	s := &TestServer{tb: tb, cfg: cfg, Clock: cfg.clock, Logs: cfg.logs, Ledger: l, Meter: m,
		API: api, HTTP: hs, Client: &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}}
	tb.Cleanup(s.Close)
	return s
}

// Path is the ledger file's path.
func (s *TestServer) Path() string { return s.cfg.path }

// Close stops the HTTP server, then closes the ledger once its queue is
// committed. It is safe to call more than once.
func (s *TestServer) Close() {
	s.closeOnce.Do(func() {
		s.Client.CloseIdleConnections()
		s.HTTP.Close()
		if err := s.Ledger.Close(); err != nil {
			s.tb.Errorf("close ledger: %v", err)
		}
	})
}

// MustReopen closes s and opens a new ledger, meter and server on the same
// file with the same clock, plans and log buffer: a restart. The new
// server is closed when tb ends.
func (s *TestServer) MustReopen(tb testing.TB) *TestServer {
	tb.Helper()
	s.Close()
	return openServer(tb, s.cfg)
}

// LastSeq is the ledger's newest event sequence, once denials (which are
// answered before their commit) are written.
func (s *TestServer) LastSeq(tb testing.TB) uint64 {
	tb.Helper()
	if err := s.Ledger.Flush(context.Background()); err != nil {
		tb.Fatalf("flush: %v", err)
	}
	seq, err := s.Ledger.LastSeq(context.Background())
	if err != nil {
		tb.Fatalf("last seq: %v", err)
	}
	return seq
}

// response is an HTTP answer, read in full.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// request is one HTTP request a test sends.
type request struct {
	Method string
	Path   string
	Body   string
	// Header holds extra headers; an "Authorization" of "" is not sent.
	Header map[string]string
}

// Send performs req. It does not touch tb, so goroutines may call it.
func (s *TestServer) Send(req request) (response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var body io.Reader
	if req.Body != "" {
		body = strings.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, s.HTTP.URL+req.Path, body)
	if err != nil {
		return response{}, err
	}
	if req.Body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.Header {
		hr.Header.Set(k, v)
	}
	resp, err := s.Client.Do(hr)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", req.Method, req.Path, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Do performs req and fails the test if the round trip fails.
func (s *TestServer) Do(tb testing.TB, req request) response {
	tb.Helper()
	resp, err := s.Send(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	return resp
}

// Admin sends a request with the admin token.
func (s *TestServer) Admin(tb testing.TB, method, path, body string) response {
	tb.Helper()
	return s.Do(tb, request{Method: method, Path: path, Body: body,
		Header: map[string]string{"Authorization": "Bearer " + testAdminToken}})
}

// MustCreateAccount creates an account with the given id and plan over the
// admin API.
func (s *TestServer) MustCreateAccount(tb testing.TB, id, plan string) string {
	tb.Helper()
	body := mustJSON(tb, map[string]string{"id": id, "name": "Account " + id,
		"email": id + "@example.com", "plan": plan})
	resp := s.Admin(tb, http.MethodPost, "/api/admin/accounts", body)
	if resp.Status != http.StatusCreated {
		tb.Fatalf("create account %s: %d %s", id, resp.Status, resp.Body)
	}
	return id
}

// issuedKey is the body of POST /api/admin/accounts/{id}/keys.
type issuedKey struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Key       string    `json:"key"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

// MustIssueKey issues an API key for account over the admin API.
func (s *TestServer) MustIssueKey(tb testing.TB, account string) issuedKey {
	tb.Helper()
	resp := s.Admin(tb, http.MethodPost, "/api/admin/accounts/"+account+"/keys", "")
	if resp.Status != http.StatusCreated {
		tb.Fatalf("issue key for %s: %d %s", account, resp.Status, resp.Body)
	}
	var k issuedKey
	mustUnmarshal(tb, resp.Body, &k)
	if k.Key == "" || k.ID == "" {
		tb.Fatalf("issue key for %s: incomplete answer %s", account, resp.Body)
	}
	return k
}

// MustAccountWithKey creates an account and one key for it.
func (s *TestServer) MustAccountWithKey(tb testing.TB, id, plan string) string {
	tb.Helper()
	s.MustCreateAccount(tb, id, plan)
	return s.MustIssueKey(tb, id).Key
}

// MustFill makes n allowed calls for key through the meter itself, from
// up to 20 goroutines so group commit batches them: it is set-up, cheaper
// than HTTP under -race, and fails unless every call is allowed.
func (s *TestServer) MustFill(tb testing.TB, key string, n int) {
	tb.Helper()
	g := min(n, 20)
	var next, allowed atomic.Int64
	errs := make(chan error, g)
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				res, err := s.Meter.Track(context.Background(), meter.Call{APIKey: key, Endpoint: "/v1/fill", Method: "GET"})
				if err != nil {
					errs <- err
					return
				}
				if res.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("fill: %v", err)
	}
	if got := allowed.Load(); got != int64(n) {
		tb.Fatalf("fill: %d of %d calls allowed", got, n)
	}
}

// trackConcurrently sends req each times from each of goroutines
// goroutines and counts the answers by status (-1: transport error).
func (s *TestServer) trackConcurrently(req request, goroutines, each int) map[int]int {
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				resp, err := s.Send(req)
				if err != nil {
					resp.Status = -1
				}
				mu.Lock()
				codes[resp.Status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return codes
}

// jsonKeys returns the member names of a JSON object.
func jsonKeys(tb testing.TB, b []byte) map[string]json.RawMessage {
	tb.Helper()
	var m map[string]json.RawMessage
	mustUnmarshal(tb, b, &m)
	return m
}

// requireKeys fails unless obj has exactly the names in want.
func requireKeys(tb testing.TB, obj map[string]json.RawMessage, want ...string) {
	tb.Helper()
	for _, k := range want {
		if _, ok := obj[k]; !ok {
			tb.Errorf("missing JSON field %q in %v", k, keysOf(obj))
		}
	}
	if len(obj) != len(want) {
		tb.Errorf("JSON fields %v, want exactly %v", keysOf(obj), want)
	}
}

func keysOf(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return string(b)
}

func mustUnmarshal(tb testing.TB, b []byte, v any) {
	tb.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("decode %q: %v", truncate(b, 300), err)
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func ptr[T any](v T) *T { return &v }
