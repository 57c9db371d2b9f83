package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/meterd/meterd/internal/loadgen"
)

// The gateway benchmarks drive keep-alive connections over loopback with
// internal/loadgen (the core benchmark's generator). Every target of a
// comparison runs in the same run, interleaved in rounds so that a change
// in the load of the shared machine hits them alike, and each figure is
// the median over the rounds of a ratio to the baseline. Run them with
//
//	go test -run '^$' -bench 'BenchmarkProxyOverhead|BenchmarkAuthz' -benchtime 1x ./httpapi/
//
// METER_BENCH_SECONDS sets the time per target and load (default 6, split
// into 3 rounds). Servers run in the benchmark's process, sharing its
// cores with the generator.
//
// Two loads: 64 connections saturate the two cores, which measures
// throughput (latency there is queueing, 64 / throughput); one connection
// leaves the cores idle between requests, which measures the latency a
// request gains on its way through meterd.

const benchRounds = 3

func benchDuration() time.Duration {
	secs := 6
	if v, err := strconv.Atoi(os.Getenv("METER_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	return time.Duration(secs) * time.Second
}

// benchTarget is one server to drive and how to ask it.
type benchTarget struct {
	name string
	addr string
	req  func(c, i int) []byte
}

// BenchmarkProxyOverhead: requests through the metering proxy to an
// upstream, against the same requests straight to the upstream, in async
// and sync durability; and through a bare httputil.ReverseProxy with the
// same transport and no metering, which tells the cost of the second HTTP
// hop from the cost of metering. The trivial upstream answers at once; the
// work10ms one after 10 ms, like an API that queries a database, so that
// the upstream rather than the shared cores bounds the throughput.
func BenchmarkProxyOverhead(b *testing.B) {
	for _, up := range []struct {
		name  string
		work  time.Duration
		loads []int
	}{{"trivial", 0, []int{64, 1}}, {"work10ms", 10 * time.Millisecond, []int{64}}} {
		upstream := benchUpstream(b, up.work)
		upAddr := upstream.Listener.Addr().String()
		target, _ := url.Parse(upstream.URL)
		bare := httptest.NewServer(&httputil.ReverseProxy{Transport: newBenchTransport(),
			Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() }})
		b.Cleanup(bare.Close)
		bareAddr := bare.Listener.Addr().String()
		targets := []benchTarget{
			{name: "direct", addr: upAddr, req: func(c, i int) []byte { return loadgen.Get(upAddr, "/v1/orders/1") }},
			{name: "bareproxy", addr: bareAddr, req: func(c, i int) []byte { return loadgen.Get(bareAddr, "/v1/orders/1") }},
		}
		for _, mode := range []string{"async", "sync"} {
			s := mustGWServer(b, gwOptions{async: mode == "async"})
			keys := benchKeys(s)
			addr := s.mustProxy(upstream.URL).Listener.Addr().String()
			targets = append(targets, benchTarget{name: mode, addr: addr, req: func(c, i int) []byte {
				return loadgen.Get(addr, "/v1/orders/1", "X-API-Key", keys[c%len(keys)])
			}})
		}
		for _, conns := range up.loads {
			benchCompare(b, fmt.Sprintf("%s_c%d_", up.name, conns), conns, targets)
		}
	}
}

// BenchmarkAuthz: forward auth through meterd's full HTTP stack (mux,
// instrumentation, decision, record) against a bare net/http handler that
// answers 200 and nothing else, like the core benchmark's baseline.
func BenchmarkAuthz(b *testing.B) {
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(bare.Close)
	req := func(addr, key string) []byte {
		return loadgen.Get(addr, "/v1/authz", "X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/v1/orders/1", "X-API-Key", key)
	}
	bareAddr := bare.Listener.Addr().String()
	targets := []benchTarget{{name: "bare", addr: bareAddr, req: func(c, i int) []byte { return req(bareAddr, "x") }}}
	for _, mode := range []string{"async", "sync"} {
		s := mustGWServer(b, gwOptions{async: mode == "async"})
		keys := benchKeys(s)
		addr := s.HTTP.Listener.Addr().String()
		targets = append(targets, benchTarget{name: mode, addr: addr,
			req: func(c, i int) []byte { return req(addr, keys[c%len(keys)]) }})
	}
	for _, conns := range []int{64, 1} {
		benchCompare(b, fmt.Sprintf("c%d_", conns), conns, targets)
	}
}

// benchCompare drives the targets in interleaved rounds and reports the
// baseline's (targets[0]) throughput and latency, and for the others the
// median per-round throughput ratio and added p50/p99.
func benchCompare(b *testing.B, prefix string, conns int, targets []benchTarget) {
	b.Helper()
	per := benchDuration() / benchRounds
	results := make([][]loadgen.Result, len(targets))
	for range benchRounds {
		for i, t := range targets {
			results[i] = append(results[i], benchDrive(b, t, conns, per))
		}
	}
	base := results[0]
	b.ReportMetric(median(base, func(r loadgen.Result, _ int) float64 { return r.RPS() }), prefix+targets[0].name+"_req/s")
	b.ReportMetric(median(base, func(r loadgen.Result, _ int) float64 { return us(r.P50) }), prefix+targets[0].name+"_p50_µs")
	b.ReportMetric(median(base, func(r loadgen.Result, _ int) float64 { return us(r.P99) }), prefix+targets[0].name+"_p99_µs")
	for i, t := range targets[1:] {
		rs, tag := results[i+1], prefix+t.name
		b.ReportMetric(median(rs, func(r loadgen.Result, k int) float64 { return r.RPS() / base[k].RPS() }), tag+"_ratio")
		b.ReportMetric(median(rs, func(r loadgen.Result, k int) float64 { return us(r.P50 - base[k].P50) }), tag+"_p50_added_µs")
		b.ReportMetric(median(rs, func(r loadgen.Result, k int) float64 { return us(r.P99 - base[k].P99) }), tag+"_p99_added_µs")
	}
}

func us(d time.Duration) float64 { return float64(d.Microseconds()) }

// median is the median of f over the rounds' results.
func median(rs []loadgen.Result, f func(r loadgen.Result, round int) float64) float64 {
	vs := make([]float64, len(rs))
	for k, r := range rs {
		vs[k] = f(r, k)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// newBenchTransport is the bare reverse proxy's transport, pooled like the
// metering proxy's default.
func newBenchTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy, t.MaxIdleConns, t.MaxIdleConnsPerHost, t.DisableCompression = nil, 1024, 512, true
	return t
}

// benchUpstream is the API behind the proxy: it answers a small JSON
// document after work.
func benchUpstream(b *testing.B, work time.Duration) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if work > 0 {
			time.Sleep(work)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":1}` + "\n"))
	}))
	b.Cleanup(up.Close)
	return up
}

// benchKeys gives each of 64 connections an account of its own on the
// pro plan, as the core benchmark does.
func benchKeys(s *gwServer) []string {
	keys := make([]string, 64)
	for c := range keys {
		keys[c] = s.mustAccountKey(fmt.Sprintf("bench-%02d", c), "pro")
	}
	return keys
}

func benchDrive(b *testing.B, t benchTarget, conns int, dur time.Duration) loadgen.Result {
	b.Helper()
	r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: t.addr, Conns: conns, Duration: dur, Request: t.req})
	if err != nil {
		b.Fatal(err)
	}
	if r.Requests == 0 || r.Codes[http.StatusOK] != r.Requests {
		b.Fatalf("%s: not every answer was 200: %v", t.name, r)
	}
	b.Logf("%-6s x%-2d %v", t.name, conns, r)
	return r
}
