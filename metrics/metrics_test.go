package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
	"github.com/meterd/meterd/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testPlans: free allows 3 calls, pro includes 2 and bills the rest.
const testPlans = `
plans:
  free:
    limit: 3
    hard: true
  pro:
    limit: 2
    overage_micros: 1000
    monthly_price_cents: 2900
`

// stack is meterd as serve wires it: ledger and HTTP API both observed by
// one Metrics on one registry, /metrics served from that registry.
type stack struct {
	reg    *prometheus.Registry
	ledger *ledger.Ledger
	meter  *meter.Meter
	url    string
	free   atomic.Int64 // the fake disk's free bytes; negative: probe fails
}

func newStack(tb testing.TB) *stack {
	tb.Helper()
	s := &stack{reg: prometheus.NewRegistry()}
	s.free.Store(5 << 30)
	mx := metrics.New(s.reg)
	metrics.RegisterBuildInfo(s.reg, "v1.0.0-test")
	l, err := ledger.Open(filepath.Join(tb.TempDir(), ledger.FileName), ledger.Options{Observer: mx,
		MinFreeBytes: 64 << 20, FreeSpace: func(string) (uint64, error) {
			if n := s.free.Load(); n >= 0 {
				return uint64(n), nil
			}
			return 0, errors.New("statfs failed")
		}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	s.ledger = l
	metrics.RegisterGauge(s.reg, "meterd_ledger_queue_depth", "Writes waiting for the ledger writer.",
		func() float64 { return float64(l.QueueDepth()) })
	metrics.RegisterDiskFree(s.reg, l.MinFreeBytes(), l.FreeBytes)
	plans, err := meter.ParsePlans([]byte(testPlans))
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	s.meter, err = meter.New(context.Background(), meter.Config{Store: l, Plans: plans, Now: func() time.Time { return now }})
	if err != nil {
		tb.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{Meter: s.meter, AdminToken: "metrics-test-admin-token", Observer: mx, Usage: l,
		Metrics: promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})})
	hs := httptest.NewServer(api.Handler())
	tb.Cleanup(hs.Close)
	s.url = hs.URL
	return s
}

// mustKey creates an account on plan and returns an API key for it.
func (s *stack) mustKey(tb testing.TB, id, plan string) string {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.meter.CreateAccount(ctx, meter.Account{ID: id, Name: id, Email: id + "@example.com", Plan: plan}); err != nil {
		tb.Fatal(err)
	}
	_, key, err := s.meter.IssueKey(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func (s *stack) request(tb testing.TB, method, path, body string, header ...string) int {
	tb.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *stack) track(tb testing.TB, key string) int {
	tb.Helper()
	return s.request(tb, http.MethodPost, "/v1/track", fmt.Sprintf(`{"api_key":%q,"endpoint":"/v1/things/7","method":"GET"}`, key),
		"Content-Type", "application/json")
}

// scrape reads /metrics over HTTP, as Prometheus would.
func (s *stack) scrape(tb testing.TB) map[string]*dto.MetricFamily {
	tb.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return mfs
}

// sample finds the series of family name with exactly the given labels
// ("k=v" pairs) and returns its value: a counter's or gauge's value, a
// histogram's sample count.
func sample(tb testing.TB, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	tb.Helper()
	mf := mfs[name]
	if mf == nil {
		tb.Fatalf("no metric %s", name)
	}
	want := strings.Join(labels, ",")
	var seen []string
	for _, m := range mf.GetMetric() {
		var got []string
		for _, lp := range m.GetLabel() {
			got = append(got, lp.GetName()+"="+lp.GetValue())
		}
		sort.Strings(got)
		if strings.Join(got, ",") != want {
			seen = append(seen, strings.Join(got, ","))
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	tb.Fatalf("%s{%s}: no such series; have %v", name, want, seen)
	return 0
}

func TestMetrics_Workload(t *testing.T) {
	s := newStack(t)
	free, pro := s.mustKey(t, "f1", "free"), s.mustKey(t, "p1", "pro")
	var codes []int
	for range 5 { // 3 allowed, 2 denied
		codes = append(codes, s.track(t, free))
	}
	for range 4 { // 2 allowed, 2 overage
		codes = append(codes, s.track(t, pro))
	}
	if fmt.Sprint(codes) != "[200 200 200 429 429 200 200 200 200]" {
		t.Fatalf("track answers %v", codes)
	}
	if code := s.request(t, http.MethodGet, "/api/usage/current", "", "X-API-Key", pro); code != 200 {
		t.Fatalf("usage: %d", code)
	}
	if code := s.request(t, http.MethodGet, "/api/usage/current", "", "X-API-Key", "mk_nope"); code != 401 {
		t.Fatalf("usage with a bad key: %d", code)
	}
	if code := s.request(t, http.MethodGet, "/no/such/path/42", ""); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}

	mfs := s.scrape(t)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"meterd_meter_decisions_total", []string{"outcome=allowed", "plan=free"}, 3},
		{"meterd_meter_decisions_total", []string{"outcome=denied", "plan=free"}, 2},
		{"meterd_meter_decisions_total", []string{"outcome=allowed", "plan=pro"}, 2},
		{"meterd_meter_decisions_total", []string{"outcome=overage", "plan=pro"}, 2},
		{"meterd_meter_decision_duration_seconds", nil, 9},
		{"meterd_http_requests_total", []string{"code=200", "method=POST", "route=/v1/track"}, 7},
		{"meterd_http_requests_total", []string{"code=429", "method=POST", "route=/v1/track"}, 2},
		{"meterd_http_requests_total", []string{"code=200", "method=GET", "route=/api/usage/current"}, 1},
		{"meterd_http_requests_total", []string{"code=401", "method=GET", "route=/api/usage/current"}, 1},
		{"meterd_http_requests_total", []string{"code=404", "method=GET", "route=not_found"}, 1},
		{"meterd_http_request_duration_seconds", []string{"route=/v1/track"}, 9},
		// Every write is one op of one commit: 2 accounts, 2 keys, 9 events.
		{"meterd_ledger_commit_errors_total", nil, 0},
		{"meterd_ledger_queue_depth", nil, 0},
		{"meterd_ledger_disk_free_bytes", nil, 5 << 30},
		{"meterd_ledger_disk_floor_bytes", nil, 64 << 20},
		{"meterd_build_info", []string{"version=v1.0.0-test"}, 1},
	} {
		if got := sample(t, mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, strings.Join(c.labels, ","), got, c.want)
		}
	}
	ops := mfs["meterd_ledger_commit_batch_size"].GetMetric()[0].GetHistogram()
	commits := mfs["meterd_ledger_commit_duration_seconds"].GetMetric()[0].GetHistogram()
	if ops.GetSampleSum() != 13 || ops.GetSampleCount() == 0 || ops.GetSampleCount() != commits.GetSampleCount() {
		t.Errorf("commit histograms: %v ops in %d commits, %d durations", ops.GetSampleSum(), ops.GetSampleCount(), commits.GetSampleCount())
	}
	for name := range mfs {
		if strings.Contains(name, "account") {
			t.Errorf("metric %s: no per-account metrics by default", name)
		}
	}
	for _, m := range mfs["meterd_http_requests_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "route" && strings.Contains(lp.GetValue(), "42") {
				t.Errorf("route label %q is a raw path", lp.GetValue())
			}
		}
	}
}

// TestMetrics_DiskAndCommitErrors: the disk gauge follows the probe (NaN
// while it fails), and writes refused below the floor are refused before
// they are queued: they show as 503s, not as failed commits.
func TestMetrics_DiskAndCommitErrors(t *testing.T) {
	s := newStack(t)
	key := s.mustKey(t, "p1", "pro")
	s.free.Store(1 << 20)
	deadline := time.Now().Add(5 * time.Second)
	for s.track(t, key) != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("writes never refused below the floor")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mfs := s.scrape(t)
	if got := sample(t, mfs, "meterd_ledger_disk_free_bytes"); got != 1<<20 {
		t.Errorf("disk free %v", got)
	}
	if got := sample(t, mfs, "meterd_ledger_commit_errors_total"); got != 0 {
		t.Errorf("commit errors %v: a write refused below the floor never reaches a commit", got)
	}
	if got := sample(t, mfs, "meterd_http_requests_total", "code=503", "method=POST", "route=/v1/track"); got != 1 {
		t.Errorf("503s %v", got)
	}
	s.free.Store(-1)
	time.Sleep(1100 * time.Millisecond) // the probe is cached for a second
	if got := sample(t, s.scrape(t), "meterd_ledger_disk_free_bytes"); !math.IsNaN(got) {
		t.Errorf("disk free %v while the probe fails, want NaN", got)
	}
}

// TestMetrics_Lint runs client_golang's linter (promlint: the Prometheus
// naming conventions) over every collector meterd registers. GatherAndLint
// is CollectAndLint over a whole registry, as a scrape sees it.
func TestMetrics_Lint(t *testing.T) {
	s := newStack(t)
	key := s.mustKey(t, "f1", "free")
	s.track(t, key) // so that the vectors have series to lint
	problems, err := testutil.GatherAndLint(s.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	var names []string
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		name := mf.GetName()
		names = append(names, name)
		if !strings.HasPrefix(name, "meterd_") && !strings.HasPrefix(name, "go_") &&
			!strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("metric %s: neither meterd's nor a standard collector's", name)
		}
	}
	if len(names) < 40 {
		t.Errorf("only %d metric families: %v", len(names), names)
	}
}
