package main_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/meterd/meterd/internal/loadgen"
)

// BenchmarkLoad_TrackWebhooks compares POST /v1/track load on the real
// binary without webhooks (--webhooks=false) and with them (notices on,
// an endpoint configured, the dispatcher running), in runs interleaved
// off on, on off, off on... (ABBA) so the shared machine's drift hits both alike. It
// reports the median of each and the ratio on/off:
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
	var off, on []float64
	dur := time.Duration(secs) * time.Second
	for i := 0; i < rounds; i++ {
		// ABBA: every other pair starts with webhooks on, so an order
		// effect cannot pass for a cost.
		if i%2 == 0 {
			off = append(off, runWebhookLoad(b, mode, false, rcv.URL, dur).RPS())
			on = append(on, runWebhookLoad(b, mode, true, rcv.URL, dur).RPS())
		} else {
			on = append(on, runWebhookLoad(b, mode, true, rcv.URL, dur).RPS())
			off = append(off, runWebhookLoad(b, mode, false, rcv.URL, dur).RPS())
		}
	}
	for i := range off {
		fmt.Fprintf(os.Stderr, "pair %d: off %.0f req/s, on %.0f req/s, ratio %.3f\n", i+1, off[i], on[i], on[i]/off[i])
	}
	mo, mn := median(off), median(on)
	b.ReportMetric(mo, "off_req/s")
	b.ReportMetric(mn, "on_req/s")
	b.ReportMetric(mn/mo, "on/off_ratio")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func runWebhookLoad(b *testing.B, mode string, hooks bool, receiver string, dur time.Duration) loadgen.Result {
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
	return drive(b, addr, dur, func(c, i int) []byte { return loadgen.PostJSON(addr, "/v1/track", keys[c%len(keys)]) })
}
