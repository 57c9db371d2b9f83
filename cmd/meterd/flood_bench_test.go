package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/internal/loadgen"
)

// BenchmarkLoad_DenialFlood measures what a client hammering an exhausted
// Free key costs everybody else: 64 connections of normal sync /v1/track
// traffic on 64 Pro accounts, alone (A) and alongside a paced flood of
// denied calls on the exhausted key (B), interleaved A B A B on one
// meterd, medians reported. Run it with
//
//	go test -run '^$' -bench BenchmarkLoad_DenialFlood -benchtime 1x ./cmd/meterd/
//
// METER_BENCH_SECONDS (default 5) is the time per run, METER_BENCH_ROUNDS
// (default 3) the A/B pairs, METER_FLOOD_RATE (default 5000) the flood's
// denied calls per second, METER_BENCH_BIN another meterd binary to
// measure instead (e.g. one built from an older commit).
func BenchmarkLoad_DenialFlood(b *testing.B) {
	dur := time.Duration(envInt("METER_BENCH_SECONDS", 5)) * time.Second
	rounds, rate := envInt("METER_BENCH_ROUNDS", 3), envInt("METER_FLOOD_RATE", 5000)
	exe := bin
	if v := os.Getenv("METER_BENCH_BIN"); v != "" {
		exe = v
	}
	addr := freeAddr(b)
	cmd := exec.Command(exe, "serve", "--data-dir", b.TempDir(), "--listen", addr, "--durability", "sync", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "METER_ADMIN_TOKEN="+adminToken)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	waitPort(b, addr)
	base := "http://" + addr
	bodies := make([][]byte, 64)
	for c := range bodies {
		key := setupAccountAt(b, base, fmt.Sprintf("load-%d", c), "pro")
		bodies[c] = fmt.Appendf(nil, `{"api_key":%q,"endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`, key)
	}
	floodKey := setupAccountAt(b, base, "flooder", "free")
	exhaust(b, base, floodKey)
	floodBody := fmt.Appendf(nil, `{"api_key":%q,"endpoint":"/v1/orders/1","method":"GET"}`, floodKey)

	var alone, flooded []loadgen.Result
	var denied int64
	for range rounds {
		alone = append(alone, drive(b, addr, dur, func(c, i int) []byte { return loadgen.PostJSON(addr, "/v1/track", bodies[c%64]) }))
		stop := make(chan struct{})
		done := make(chan int64)
		go func() { done <- flood(b, base+"/v1/track", floodBody, rate, stop) }()
		flooded = append(flooded, drive(b, addr, dur, func(c, i int) []byte { return loadgen.PostJSON(addr, "/v1/track", bodies[c%64]) }))
		close(stop)
		denied += <-done
	}
	rpsA, rpsB := resultMedian(alone, loadgen.Result.RPS), resultMedian(flooded, loadgen.Result.RPS)
	p99 := func(r loadgen.Result) float64 { return float64(r.P99.Microseconds()) }
	p99A, p99B := resultMedian(alone, p99), resultMedian(flooded, p99)
	b.ReportMetric(rpsA, "alone_req/s")
	b.ReportMetric(rpsB, "flooded_req/s")
	b.ReportMetric(rpsB/rpsA, "throughput_ratio")
	b.ReportMetric(p99A, "alone_p99_µs")
	b.ReportMetric(p99B, "flooded_p99_µs")
	b.ReportMetric(p99B/p99A, "p99_ratio")
	b.ReportMetric(float64(denied)/(float64(rounds)*dur.Seconds()), "denied/s")
}

// exhaust uses up the Free key's 1,000 calls with one batch report.
func exhaust(b *testing.B, base, key string) {
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	for i := range 1000 {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"api_key":%q,"endpoint":"/v1/orders/1","method":"GET","id":"fill-%d"}`, key, i)
	}
	buf.WriteString(`]}`)
	req, _ := http.NewRequest("POST", base+"/v1/events", &buf)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("exhaust the flood key: %v %v", resp, err)
	}
	resp.Body.Close()
}

// flood sends denied calls at rate per second from 8 keep-alive clients
// until stop closes, and returns how many were answered 429. Any other
// answer fails the benchmark.
func flood(b *testing.B, url string, body []byte, rate int, stop <-chan struct{}) int64 {
	const clients = 8
	interval := time.Duration(clients) * time.Second / time.Duration(rate)
	var n atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One keep-alive connection per client: the default transport keeps
	// two idle per host, and the churn of new connections would be the
	// cost measured, not the denials.
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	for range clients {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second, Transport: transport}
			next := time.Now()
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Until(next)):
				}
				next = next.Add(interval)
				req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusTooManyRequests {
					b.Errorf("flood call answered %d, want 429", resp.StatusCode)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return n.Load()
}

func resultMedian(rs []loadgen.Result, f func(loadgen.Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
