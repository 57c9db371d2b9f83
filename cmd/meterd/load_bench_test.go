package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/meterd/meterd/internal/loadgen"
)

// BenchmarkLoad_Track is the loopback load benchmark: 64 keep-alive
// connections POST /v1/track for a bounded time against the real meterd
// binary in sync and in async durability, and against a bare net/http
// handler in the same run. Figures are reported as ratios to the bare
// handler because the machine is shared and noisy. Run it with
//
//	go test -run '^$' -bench BenchmarkLoad_Track -benchtime 1x ./cmd/meterd/
//
// METER_BENCH_SECONDS sets the time per target (default 10).
func BenchmarkLoad_Track(b *testing.B) {
	secs := 10
	if v, err := strconv.Atoi(os.Getenv("METER_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	dur := time.Duration(secs) * time.Second
	bare := runBare(b, dur)
	b.ReportMetric(bare.RPS(), "bare_req/s")
	for _, mode := range []string{"sync", "async"} {
		r := runMeterd(b, mode, dur)
		b.ReportMetric(r.RPS(), mode+"_req/s")
		b.ReportMetric(r.RPS()/bare.RPS(), mode+"_ratio")
		b.ReportMetric(float64(r.P50.Microseconds()), mode+"_p50_µs")
		b.ReportMetric(float64(r.P99.Microseconds()), mode+"_p99_µs")
	}
	b.ReportMetric(float64(bare.P99.Microseconds()), "bare_p99_µs")
}

func runBare(b *testing.B, dur time.Duration) loadgen.Result {
	dir := b.TempDir()
	exe := filepath.Join(dir, "bare")
	if out, err := exec.Command("go", "build", "-o", exe, "./testdata/bare").CombinedOutput(); err != nil {
		b.Fatalf("build bare: %v\n%s", err, out)
	}
	addr := freeAddr(b)
	cmd := exec.Command(exe, addr)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitPort(b, addr)
	body := []byte(`{"api_key":"x","endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`)
	return drive(b, addr, dur, func(c, i int) []byte { return loadgen.PostJSON(addr, "/v1/track", body) })
}

func runMeterd(b *testing.B, mode string, dur time.Duration) loadgen.Result {
	dir := b.TempDir()
	addr := freeAddr(b)
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--listen", addr, "--durability", mode, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "METER_ADMIN_TOKEN="+adminToken)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	waitPort(b, addr)
	keys := make([][]byte, 64)
	for c := range keys {
		key := setupAccountAt(b, "http://"+addr, fmt.Sprintf("load-%d", c), "pro")
		keys[c] = fmt.Appendf(nil, `{"api_key":%q,"endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`, key)
	}
	return drive(b, addr, dur, func(c, i int) []byte { return loadgen.PostJSON(addr, "/v1/track", keys[c%len(keys)]) })
}

func drive(b *testing.B, addr string, dur time.Duration, req func(c, i int) []byte) loadgen.Result {
	r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: addr, Conns: 64, Duration: dur, Request: req})
	if err != nil {
		b.Fatal(err)
	}
	if r.Codes[200] != r.Requests || r.Requests == 0 {
		b.Fatalf("not every answer was 200: %v", r)
	}
	b.Log(addr, r)
	return r
}
