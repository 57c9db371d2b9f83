package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/meterd/meterd/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// benchServer is one account with a key behind a server with real
// metrics, on an async ledger so fsync stays off the clock.
func benchServer(b *testing.B) (http.Handler, string) {
	b.Helper()
	l, err := ledger.Open(filepath.Join(b.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	m, err := meter.New(context.Background(), meter.Config{Store: l, Async: true})
	if err != nil {
		b.Fatal(err)
	}
	s := httpapi.New(httpapi.Config{Meter: m, AdminToken: "admin-token-for-bench", Observer: metrics.New(prometheus.NewRegistry()),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if _, err := m.CreateAccount(context.Background(), meter.Account{ID: "bench", Name: "b", Plan: "enterprise"}); err != nil {
		b.Fatal(err)
	}
	_, key, err := m.IssueKey(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	return s.Handler(), key
}

// BenchmarkTrackHandler measures the CPU of one POST /v1/track through the
// whole handler chain (routing, metrics, decoding, decision, headers,
// encoding) without the network, in async durability so the ledger's
// fsync stays off the clock. httptest.NewRequest and the recorder are on
// the clock too; BenchmarkTrackChain leaves them off.
func BenchmarkTrackHandler(b *testing.B) {
	h, key := benchServer(b)
	body := fmt.Sprintf(`{"api_key":%q,"endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`, key)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, "/v1/track", strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// discardWriter is the cheapest ResponseWriter that still behaves like
// net/http's: a fresh header map per response, a status, a body sink.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(c int) {
	if w.code == 0 {
		w.code = c
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	w.n += len(p)
	return len(p), nil
}

// serveLean runs one request through h with a request built once and
// re-armed, so only the server's own work is measured.
func serveLean(b *testing.B, h http.Handler, req *http.Request, body []byte, want int) {
	b.Helper()
	rd := bytes.NewReader(body)
	w := &discardWriter{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rd.Reset(body)
		req.Body, req.ContentLength = io.NopCloser(rd), int64(len(body))
		w.h, w.code, w.n = http.Header{}, 0, 0
		h.ServeHTTP(w, req)
		if w.code != want || w.n == 0 && want != http.StatusOK {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
}

// BenchmarkTrackChain is POST /v1/track through the server's handler
// chain with the test harness's own allocations taken out: the figure the
// per-request CPU work of issue 12 is judged by.
func BenchmarkTrackChain(b *testing.B) {
	h, key := benchServer(b)
	body := fmt.Appendf(nil, `{"api_key":%q,"endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`, key)
	req := httptest.NewRequest(http.MethodPost, "/v1/track", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bench")
	serveLean(b, h, req, body, http.StatusOK)
}

// BenchmarkAuthzChain is GET /v1/authz (Traefik's headers) through the
// handler chain, measured like BenchmarkTrackChain.
func BenchmarkAuthzChain(b *testing.B) {
	h, key := benchServer(b)
	req := httptest.NewRequest(http.MethodGet, "/v1/authz", nil)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", "/v1/orders/1?x=1")
	req.Header.Set("X-API-Key", key)
	req.Header.Set("User-Agent", "bench")
	serveLean(b, h, req, nil, http.StatusOK)
}
