package main_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/internal/loadgen"
)

// BenchmarkLoad_TrackWebhooks compares POST /v1/track load on the real
// binary without webhooks (--webhooks=false) and with them (notices on,
// an endpoint configured, the dispatcher running), in runs interleaved
// off on, on off, off on... (ABBA) so the shared machine's drift hits both alike. It
// reports the medians of throughput and of meterd's CPU per request
// (from /proc, less disturbed by other load than throughput), and the
// medians of the per-pair ratios on/off:
//
//	METER_BENCH_SECONDS=5 go test -run '^$' -bench BenchmarkLoad_TrackWebhooks -benchtime 1x ./cmd/meterd/
//
// METER_BENCH_ROUNDS sets the pairs (default 3); METER_BENCH_DURABILITY
// the mode (default async, where CPU rather than fsync sets the pace).
func BenchmarkLoad_TrackWebhooks(b *testing.B) {
	secs, rounds, mode := 5, 3, "async"
	if v, err := strconv.Atoi(os.Getenv("METER_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	if v, err := strconv.Atoi(os.Getenv("METER_BENCH_ROUNDS")); err == nil && v > 0 && v <= 10 {
		rounds = v
	}
	if v := os.Getenv("METER_BENCH_DURABILITY"); v != "" {
		mode = v
	}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer rcv.Close()
	var off, on, offCPU, onCPU []float64
	dur := time.Duration(secs) * time.Second
	run := func(hooks bool) {
		r, cpu := runWebhookLoad(b, mode, hooks, rcv.URL, dur)
		if hooks {
			on, onCPU = append(on, r.RPS()), append(onCPU, cpu)
		} else {
			off, offCPU = append(off, r.RPS()), append(offCPU, cpu)
		}
	}
	for i := 0; i < rounds; i++ {
		// ABBA: every other pair starts with webhooks on, so an order
		// effect cannot pass for a cost.
		run(i%2 == 1)
		run(i%2 == 0)
	}
	var ratios, cpuRatios []float64
	for i := range off {
		ratios, cpuRatios = append(ratios, on[i]/off[i]), append(cpuRatios, onCPU[i]/offCPU[i])
		fmt.Fprintf(os.Stderr, "pair %d: off %.0f req/s %.1f µs CPU/req, on %.0f req/s %.1f µs CPU/req; ratio req/s %.3f, CPU/req %.3f\n",
			i+1, off[i], offCPU[i], on[i], onCPU[i], ratios[i], cpuRatios[i])
	}
	b.ReportMetric(median(off), "off_req/s")
	b.ReportMetric(median(on), "on_req/s")
	b.ReportMetric(median(ratios), "on/off_rps_ratio")
	b.ReportMetric(median(offCPU), "off_cpu_µs/req")
	b.ReportMetric(median(onCPU), "on_cpu_µs/req")
	b.ReportMetric(median(cpuRatios), "on/off_cpu_ratio")
}

// cpuTime is the user+system CPU a process has used (Linux /proc).
func cpuTime(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64) // fields 14 and 15 of stat
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// runWebhookLoad drives one meterd and returns the load's result and the
// server's CPU per request in µs.
func runWebhookLoad(b *testing.B, mode string, hooks bool, receiver string, dur time.Duration) (loadgen.Result, float64) {
	dir := b.TempDir()
	addr := freeAddr(b)
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--listen", addr, "--durability", mode,
		"--log-level", "warn", "--webhooks="+strconv.FormatBool(hooks))
	cmd.Env = append(os.Environ(), "METER_ADMIN_TOKEN="+adminToken)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	waitPort(b, addr)
	base := "http://" + addr
	if hooks {
		if code := do(b, "POST", base+"/api/admin/webhooks", adminToken, map[string]any{"url": receiver}, nil); code != 201 {
			b.Fatalf("create webhook: %d", code)
		}
	}
	keys := make([][]byte, 64)
	for c := range keys {
		key := setupAccountAt(b, base, fmt.Sprintf("load-%d", c), "pro")
		keys[c] = fmt.Appendf(nil, `{"api_key":%q,"endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`, key)
	}
	before := cpuTime(b, cmd.Process.Pid)
	r := drive(b, addr, dur, func(c, i int) []byte { return loadgen.PostJSON(addr, "/v1/track", keys[c%len(keys)]) })
	used := cpuTime(b, cmd.Process.Pid) - before
	return r, float64(used.Microseconds()) / float64(r.Requests)
}
