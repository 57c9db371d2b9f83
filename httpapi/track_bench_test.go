package httpapi_test

import (
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

// BenchmarkTrackHandler measures the CPU of one POST /v1/track through the
// whole handler chain (routing, metrics, decoding, decision, headers,
// encoding) without the network, in async durability so the ledger's
// fsync stays off the clock.
func BenchmarkTrackHandler(b *testing.B) {
	l, err := ledger.Open(filepath.Join(b.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
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
	body := fmt.Sprintf(`{"api_key":%q,"endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`, key)
	h := s.Handler()
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
