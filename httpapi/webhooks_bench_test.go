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
	"time"

	"github.com/meterd/meterd/export/webhook"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/meterd/meterd/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkTrackWebhooks is BenchmarkTrackHandler without and with
// webhooks: notices on (default thresholds, crossing detection on every
// call), an endpoint configured and the dispatcher running. Run the two
// interleaved and compare medians:
//
//	go test -run '^$' -bench BenchmarkTrackWebhooks -benchtime 50000x -count 6 ./httpapi/
func BenchmarkTrackWebhooks(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "off", true: "on"}[on]
		b.Run(name, func(b *testing.B) { benchTrackWebhooks(b, on) })
	}
}

func benchTrackWebhooks(b *testing.B, on bool) {
	ctx := context.Background()
	l, err := ledger.Open(filepath.Join(b.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	m, err := meter.New(ctx, meter.Config{Store: l, Async: true})
	if err != nil {
		b.Fatal(err)
	}
	cfg := httpapi.Config{Meter: m, AdminToken: "admin-token-for-bench", Observer: metrics.New(prometheus.NewRegistry()),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if on {
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
		defer rcv.Close()
		m.SetNotices(&meter.NoticeConfig{Default: meter.DefaultThresholds()}, l)
		admin := webhook.NewAdmin(l, nil, false, 0)
		if _, _, err := admin.CreateEndpoint(ctx, meter.WebhookEndpoint{URL: rcv.URL, Enabled: true}, ""); err != nil {
			b.Fatal(err)
		}
		d := webhook.New(webhook.Config{Store: l, Poll: 500 * time.Millisecond})
		d.Start()
		defer d.Close()
		cfg.Webhooks = admin
	}
	s := httpapi.New(cfg)
	if _, err := m.CreateAccount(ctx, meter.Account{ID: "bench", Name: "b", Plan: "pro"}); err != nil {
		b.Fatal(err)
	}
	_, key, err := m.IssueKey(ctx, "bench")
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
