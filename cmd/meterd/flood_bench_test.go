package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/internal/loadgen"
)

// BenchmarkLoad_DenialFlood measures what a client hammering an exhausted
// Free key costs everybody else. One meterd (sync durability); normal
// traffic is /v1/track on 64 Pro accounts over 64 keep-alive connections;
// the flood is denied /v1/track calls on the exhausted key over 8. Each
// round runs, on the same meterd:
//
//   - closed: normal traffic as fast as answers come back, alone (A) and
//     beside a flood paced at METER_FLOOD_RATE/s (B);
//   - closed-flood: the same normal traffic beside a flood that sends as
//     fast as it is answered (a client in a retry loop);
//   - paced: normal traffic at a fixed METER_NORMAL_RATE/s, alone (A) and
//     beside the paced flood (B): what a deployment below saturation sees;
//   - flood-only: the paced flood alone, for the CPU one denial costs.
//
// A closed loop on a 2-core machine measures CPU shares: whatever the
// flood's requests cost the server and the load generator (same cores) is
// taken from the normal traffic. So the report adds meterd's CPU (from
// /proc): cores used, CPU per answered call, and in paced mode the
// marginal CPU per denial beside the same normal traffic. Figures are
// medians over the rounds; ratios are medians of each round's B/A. Run it
// with
//
//	go test -run '^$' -bench BenchmarkLoad_DenialFlood -benchtime 1x ./cmd/meterd/
//
// METER_BENCH_SECONDS (default 5) is the time per run, METER_BENCH_ROUNDS
// (default 3) the rounds, METER_FLOOD_RATE (default 5000) the paced
// flood's denials per second, METER_NORMAL_RATE (default 2000) the paced
// normal traffic, METER_FLOOD_MODES a comma-separated subset of the modes
// (e.g. "paced" while profiling), METER_BENCH_BIN another meterd binary
// to measure instead (e.g. one built from an older commit).
func BenchmarkLoad_DenialFlood(b *testing.B) {
	dur := time.Duration(envInt("METER_BENCH_SECONDS", 5)) * time.Second
	rounds := envInt("METER_BENCH_ROUNDS", 3)
	floodRate, normalRate := float64(envInt("METER_FLOOD_RATE", 5000)), float64(envInt("METER_NORMAL_RATE", 2000))
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

	fr := floodRun{b: b, addr: addr, dur: dur, pid: cmd.Process.Pid, normal: bodies, flood: floodBody}
	modes := os.Getenv("METER_FLOOD_MODES") // e.g. "paced" for a profile; default all
	on := func(m string) bool { return modes == "" || slices.Contains(strings.Split(modes, ","), m) }
	runs := map[string][]floodSample{}
	for range rounds {
		if on("closed") || on("closed-flood") {
			runs["closed/A"] = append(runs["closed/A"], fr.run(0, 0))
		}
		if on("closed") {
			runs["closed/B"] = append(runs["closed/B"], fr.run(0, floodRate))
		}
		if on("closed-flood") {
			runs["closed-flood/B"] = append(runs["closed-flood/B"], fr.run(0, -1))
		}
		if on("paced") {
			runs["paced/A"] = append(runs["paced/A"], fr.run(normalRate, 0))
			runs["paced/B"] = append(runs["paced/B"], fr.run(normalRate, floodRate))
		}
		if on("flood-only") {
			runs["flood-only"] = append(runs["flood-only"], fr.run(-1, floodRate))
		}
	}
	if r := runs["flood-only"]; len(r) > 0 {
		b.ReportMetric(sampleMedian(r, floodSample.cpuPerDenial), "flood_only_cpu_µs/denial")
	}
	for _, m := range []struct{ name, a, b string }{
		{"closed", "closed/A", "closed/B"}, {"closed-flood", "closed/A", "closed-flood/B"}, {"paced", "paced/A", "paced/B"},
	} {
		a, f := runs[m.a], runs[m.b]
		if len(f) == 0 {
			continue
		}
		rpsA, rpsB := sampleMedian(a, floodSample.rps), sampleMedian(f, floodSample.rps)
		p99A, p99B := sampleMedian(a, floodSample.p99), sampleMedian(f, floodSample.p99)
		coresA, coresB := sampleMedian(a, floodSample.cores), sampleMedian(f, floodSample.cores)
		cpuA, cpuB := sampleMedian(a, floodSample.cpuPerNormal), sampleMedian(f, floodSample.cpuPerCall)
		for unit, v := range map[string]float64{"A_req/s": rpsA, "B_req/s": rpsB, "A_p99_µs": p99A, "B_p99_µs": p99B} {
			b.ReportMetric(v, m.name+"_"+unit)
		}
		// Ratios are taken per round (B beside its own A) and their
		// median reported: the shared machine's load drifts between
		// rounds more than within one.
		b.ReportMetric(roundRatio(a, f, floodSample.rps), m.name+"_throughput_ratio")
		b.ReportMetric(roundRatio(a, f, floodSample.p99), m.name+"_p99_ratio")
		b.ReportMetric(sampleMedian(f, floodSample.denialRate), m.name+"_denied/s")
		commitA, commitB := sampleMedian(a, floodSample.commitMillis), sampleMedian(f, floodSample.commitMillis)
		b.ReportMetric(roundRatio(a, f, floodSample.commitMillis), m.name+"_commit_time_ratio")
		b.Logf("%s: normal %.0f → %.0f req/s (%.2f×), p99 %.0f → %.0f µs (%.2f×); meterd %.2f → %.2f cores, CPU per answered call %.1f → %.1f µs; commit %.2f → %.2f ms; %.0f denied/s",
			m.name, rpsA, rpsB, rpsB/rpsA, p99A, p99B, p99B/p99A, coresA, coresB, cpuA, cpuB, commitA, commitB, sampleMedian(f, floodSample.denialRate))
		if m.name == "paced" {
			// The normal traffic is the same in A and B, so B's extra
			// meterd CPU is what the denials cost beside it.
			perDenial := (coresB - coresA) * 1e6 / sampleMedian(f, floodSample.denialRate)
			b.ReportMetric(perDenial, "paced_marginal_cpu_µs/denial")
			b.Logf("paced: marginal meterd CPU per denial %.1f µs", perDenial)
		}
	}
}

// floodRun runs one measurement against the meterd process pid.
type floodRun struct {
	b      *testing.B
	addr   string
	dur    time.Duration
	pid    int
	normal [][]byte
	flood  []byte
}

// floodSample is one run's normal traffic, flood and meterd CPU.
type floodSample struct {
	normal, flood loadgen.Result
	cpu           time.Duration
	// commits is the ledger's group commits over the run (from /metrics):
	// what sync callers wait for.
	commits commitStats
}

// run drives normal traffic (rate 0: closed loop; < 0: none) beside a
// flood (rate 0: none; < 0: closed loop) for the run's duration.
func (fr floodRun) run(normalRate, floodRate float64) floodSample {
	var s floodSample
	var wg sync.WaitGroup
	before, commitsBefore := processCPU(fr.b, fr.pid), scrapeCommits(fr.b, fr.addr)
	if floodRate != 0 {
		wg.Go(func() {
			s.flood = fr.load(8, max(floodRate, 0), func(c, i int) []byte { return loadgen.PostJSON(fr.addr, "/v1/track", fr.flood) })
			if s.flood.Codes[http.StatusTooManyRequests] != s.flood.Requests {
				fr.b.Errorf("flood answers other than 429: %v", s.flood)
			}
		})
	}
	if normalRate >= 0 {
		s.normal = fr.load(64, normalRate, func(c, i int) []byte { return loadgen.PostJSON(fr.addr, "/v1/track", fr.normal[c%64]) })
		if s.normal.Codes[200] != s.normal.Requests || s.normal.Requests == 0 {
			fr.b.Fatalf("not every normal answer was 200: %v", s.normal)
		}
	}
	wg.Wait()
	s.cpu = processCPU(fr.b, fr.pid) - before
	s.commits = scrapeCommits(fr.b, fr.addr).minus(commitsBefore)
	fr.b.Logf("normal rate %v flood rate %v: normal %v; flood %v; meterd cpu %v; %v", normalRate, floodRate, s.normal, s.flood, s.cpu, s.commits)
	return s
}

func (fr floodRun) load(conns int, rate float64, req func(c, i int) []byte) loadgen.Result {
	r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: fr.addr, Conns: conns, Duration: fr.dur, Rate: rate, Request: req})
	if err != nil {
		fr.b.Fatal(err)
	}
	return r
}

func (s floodSample) rps() float64 { return s.normal.RPS() }
func (s floodSample) p99() float64 { return float64(s.normal.P99.Microseconds()) }
func (s floodSample) denialRate() float64 {
	return float64(s.flood.Requests) / s.flood.Elapsed.Seconds()
}

func (s floodSample) commitMillis() float64 { return s.commits.meanMillis() }

func (s floodSample) cpuPerDenial() float64 {
	return float64(s.cpu.Microseconds()) / float64(max(s.flood.Requests, 1))
}

func (s floodSample) cpuPerNormal() float64 {
	return float64(s.cpu.Microseconds()) / float64(max(s.normal.Requests, 1))
}

// cpuPerCall is meterd's CPU per answered request, normal and denied.
func (s floodSample) cpuPerCall() float64 {
	return float64(s.cpu.Microseconds()) / float64(max(s.normal.Requests+s.flood.Requests, 1))
}

// cores is meterd's CPU use in cores over the run.
func (s floodSample) cores() float64 {
	return s.cpu.Seconds() / max(s.normal.Elapsed, s.flood.Elapsed).Seconds()
}

// commitStats are the ledger commit metrics' running totals.
type commitStats struct{ count, seconds, writes float64 }

func (c commitStats) minus(o commitStats) commitStats {
	return commitStats{c.count - o.count, c.seconds - o.seconds, c.writes - o.writes}
}

func (c commitStats) meanMillis() float64 { return c.seconds * 1000 / max(c.count, 1) }

func (c commitStats) String() string {
	return fmt.Sprintf("%.0f commits, %.2f ms and %.1f writes each", c.count, c.meanMillis(), c.writes/max(c.count, 1))
}

// scrapeCommits reads the commit duration and batch size totals.
func scrapeCommits(b *testing.B, addr string) commitStats {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var c commitStats
	for _, line := range strings.Split(string(raw), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(val, 64)
		switch name {
		case "meterd_ledger_commit_duration_seconds_count":
			c.count = v
		case "meterd_ledger_commit_duration_seconds_sum":
			c.seconds = v
		case "meterd_ledger_commit_batch_size_sum":
			c.writes = v
		}
	}
	return c
}

// processCPU is the user+system CPU time pid has used (Linux /proc).
func processCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc CPU times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// roundRatio is the median over rounds of f(b[i]) / f(a[i]).
func roundRatio(a, b []floodSample, f func(floodSample) float64) float64 {
	v := make([]float64, len(b))
	for i := range b {
		v[i] = f(b[i]) / f(a[i])
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func sampleMedian(ss []floodSample, f func(floodSample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
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

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
