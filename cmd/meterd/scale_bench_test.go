package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/internal/loadgen"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// BenchmarkLoad_Scale is issue 12's scale benchmark. In one run it starts
// a bare net/http handler and several meterd processes — sync with 64
// accounts, sync with 100,000 seeded accounts (calls spread uniformly over
// all of them), async with 64 accounts, and sync with the in-flight bound
// off — and drives them in interleaved rounds (A B C …, then B C … A,
// …), so a change in the shared machine's load hits every target alike. It reports
// medians over the rounds of throughput, p50 and p99, and of the per-round
// ratios: sync/bare, async/bare, 100k/64 accounts. The last scenarios use
// 1,024 connections. Run it with
//
//	go test -run '^$' -bench BenchmarkLoad_Scale -benchtime 1x -timeout 30m ./cmd/meterd/
//
// METER_BENCH_SECONDS (default 5) is the time per scenario per round,
// METER_BENCH_ROUNDS (default 3) the rounds, METER_BENCH_ACCOUNTS (default
// 100000) the seeded accounts, METER_BENCH_DAYS (default 1) the days of
// calls each has (30 makes the analytics benchmark's ledger),
// METER_BENCH_LEDGER a file to keep the seeded ledger in between runs,
// METER_BENCH_DRIVER wrk or loadgen (default: wrk when /usr/bin/wrk
// exists, else the internal generator), METER_BENCH_OLD_BIN another
// meterd binary to compare with. Loopback only; every run is bounded in
// time.
func BenchmarkLoad_Scale(b *testing.B) {
	secs := envIntOr("METER_BENCH_SECONDS", 5)
	rounds := envIntOr("METER_BENCH_ROUNDS", 3)
	accounts := envIntOr("METER_BENCH_ACCOUNTS", 100_000)
	dur := time.Duration(secs) * time.Second
	driver := benchDriver()
	b.Logf("driver %s, %d rounds of %v per scenario, %d seeded accounts", driver, rounds, dur, accounts)

	bare := startBare(b)
	sync64 := startLoadMeterd(b, "sync", b.TempDir())
	async64 := startLoadMeterd(b, "async", b.TempDir())
	unbounded := startLoadMeterd(b, "sync", b.TempDir(), "--max-in-flight", "0")
	// METER_BENCH_VARIANT adds a meterd with these extra flags, driven at
	// 1,024 connections (e.g. "--max-in-flight 256 --max-queue 1024").
	var variant *loadTarget
	if v := strings.Fields(os.Getenv("METER_BENCH_VARIANT")); len(v) > 0 {
		variant = startLoadMeterd(b, "sync", b.TempDir(), v...)
	}
	bigDir := b.TempDir()
	bigBodies := seededLedger(b, bigDir, accounts, envIntOr("METER_BENCH_DAYS", 1))
	bootStart := time.Now()
	big := startLoadMeterd(b, "sync", bigDir)
	b.Logf("meterd with %d accounts answered after %v", accounts, time.Since(bootStart).Round(time.Millisecond))
	big.bodies = bigBodies

	scenarios := []scenario{
		{name: "bare", t: bare, conns: 64},
		{name: "sync", t: sync64, conns: 64},
		{name: "sync_100k", t: big, conns: 64},
		{name: "async", t: async64, conns: 64},
		{name: "sync_c1024", t: sync64, conns: 1024},
		{name: "sync_c1024_unbounded", t: unbounded, conns: 1024},
		{name: "bare_c1024", t: bare, conns: 1024},
	}
	if variant != nil {
		scenarios = append(scenarios, scenario{name: "sync_c1024_variant", t: variant, conns: 1024})
	}
	// METER_BENCH_OLD_BIN names another meterd build (say, the commit
	// before a change) driven in the same rounds, sync and async: a
	// before/after in one run.
	if old := os.Getenv("METER_BENCH_OLD_BIN"); old != "" {
		scenarios = append(scenarios,
			scenario{name: "old_sync", t: startBinary(b, old, "sync", b.TempDir()), conns: 64},
			scenario{name: "old_async", t: startBinary(b, old, "async", b.TempDir()), conns: 64})
	}
	results := map[string][]loadgen.Result{}
	for round := range rounds {
		// Each round starts one scenario further on, so no scenario always
		// follows the same neighbour or holds the same slot: a slot's bias
		// (measured at ~1.08× between first and last) cancels out.
		for i := range scenarios {
			sc := scenarios[(i+round)%len(scenarios)]
			r := driveScenario(b, driver, sc, dur)
			b.Logf("round %d %-22s %v", round+1, sc.name, r)
			results[sc.name] = append(results[sc.name], r)
		}
	}
	report(b, results, scenarios, rounds)
}

// scenario is one target driven with a number of connections.
type scenario struct {
	name  string
	t     *loadTarget
	conns int
}

// loadTarget is a running server and the /v1/track bodies to send it.
type loadTarget struct {
	addr   string
	bodies [][]byte
}

func report(b *testing.B, res map[string][]loadgen.Result, scenarios []scenario, rounds int) {
	ratio := func(num, den string) float64 {
		rs := make([]float64, rounds)
		for i := range rs {
			rs[i] = res[num][i].RPS() / res[den][i].RPS()
		}
		return median(rs)
	}
	for _, sc := range scenarios {
		name, rs := sc.name, res[sc.name]
		b.ReportMetric(median(mapRes(rs, func(r loadgen.Result) float64 { return r.RPS() })), name+"_req/s")
		b.ReportMetric(median(mapRes(rs, func(r loadgen.Result) float64 { return float64(r.P50.Microseconds()) })), name+"_p50_µs")
		b.ReportMetric(median(mapRes(rs, func(r loadgen.Result) float64 { return float64(r.P99.Microseconds()) })), name+"_p99_µs")
		b.ReportMetric(median(mapRes(rs, func(r loadgen.Result) float64 { return r.Refused() })), name+"_refused_share")
		if sc.conns > 64 && rs[0].OKP99 > 0 {
			b.ReportMetric(median(mapRes(rs, func(r loadgen.Result) float64 { return float64(r.OKP99.Microseconds()) })), name+"_served_p99_µs")
		}
	}
	b.ReportMetric(ratio("sync", "bare"), "sync/bare")
	b.ReportMetric(ratio("async", "bare"), "async/bare")
	b.ReportMetric(ratio("sync_100k", "sync"), "100k/64acct")
	b.ReportMetric(ratio("sync_c1024", "bare"), "c1024/bare")
	if _, ok := res["old_sync"]; ok {
		b.ReportMetric(ratio("sync", "old_sync"), "sync/old_sync")
		b.ReportMetric(ratio("async", "old_async"), "async/old_async")
		b.ReportMetric(ratio("old_sync", "bare"), "old_sync/bare")
		b.ReportMetric(ratio("old_async", "bare"), "old_async/bare")
	}
}

func mapRes(rs []loadgen.Result, f func(loadgen.Result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func envIntOr(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchDriver picks the load generator: wrk (C, cheap on the shared
// cores) when installed, else internal/loadgen.
func benchDriver() string {
	if d := os.Getenv("METER_BENCH_DRIVER"); d != "" {
		return d
	}
	if _, err := os.Stat("/usr/bin/wrk"); err == nil {
		return "wrk"
	}
	return "loadgen"
}

// startBare builds and starts the bare handler for the rest of the
// benchmark.
func startBare(b *testing.B) *loadTarget {
	exe := filepath.Join(b.TempDir(), "bare")
	if out, err := exec.Command("go", "build", "-o", exe, "./testdata/bare").CombinedOutput(); err != nil {
		b.Fatalf("build bare: %v\n%s", err, out)
	}
	addr := freeAddr(b)
	cmd := exec.Command(exe, addr)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitPort(b, addr)
	return &loadTarget{addr: addr, bodies: [][]byte{[]byte(`{"api_key":"x","endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`)}}
}

// startLoadMeterd starts meterd on dir for the rest of the benchmark; on
// a fresh dir it creates 64 pro accounts with a key each.
func startLoadMeterd(b *testing.B, mode, dir string, extra ...string) *loadTarget {
	return startBinary(b, bin, mode, dir, extra...)
}

func startBinary(b *testing.B, exe, mode, dir string, extra ...string) *loadTarget {
	addr := freeAddr(b)
	args := append([]string{"serve", "--data-dir", dir, "--listen", addr, "--durability", mode, "--log-level", "warn"}, extra...)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "METER_ADMIN_TOKEN="+adminToken)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	waitPortFor(b, addr, 5*time.Minute)
	t := &loadTarget{addr: addr}
	if _, err := os.Stat(filepath.Join(dir, "seeded")); err == nil {
		return t
	}
	for c := range 64 {
		key := setupAccountAt(b, "http://"+addr, fmt.Sprintf("load-%d", c), "pro")
		t.bodies = append(t.bodies, trackBody(key))
	}
	return t
}

func trackBody(key string) []byte {
	return fmt.Appendf(nil, `{"api_key":%q,"endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`, key)
}

// waitPortFor is waitPort with a longer bound, for a meterd loading 100k
// accounts.
func waitPortFor(b *testing.B, addr string, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s never accepted connections", addr)
}

// seededLedger puts a ledger with n seeded accounts and days of history
// into dir and marks dir seeded; it returns a track body per key. With
// METER_BENCH_LEDGER set, the seeded file (and its keys, in a .bodies file
// beside it) is made once there and copied for each run.
func seededLedger(b *testing.B, dir string, n, days int) [][]byte {
	path := filepath.Join(dir, ledger.FileName)
	keep := os.Getenv("METER_BENCH_LEDGER")
	if keep == "" {
		return seedScaleLedger(b, path, n, days)
	}
	if _, err := os.Stat(keep + ".bodies"); err != nil {
		seedScaleLedger(b, keep, n, days)
	}
	raw, err := os.ReadFile(keep + ".bodies")
	if err != nil {
		b.Fatal(err)
	}
	bodies := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	if len(bodies) != n {
		b.Fatalf("%s holds %d accounts, want %d: remove it to reseed", keep, len(bodies), n)
	}
	if err := copyFile(path, keep); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seeded"), nil, 0o600); err != nil {
		b.Fatal(err)
	}
	return bodies
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// seedScaleLedger writes n pro accounts, a key each and one call each on
// each of the last days days straight into a ledger file (through the
// ledger's own API, from many goroutines so group commit packs them),
// marks the directory seeded (and writes path.bodies), and returns a
// track body per key.
func seedScaleLedger(b *testing.B, path string, n, days int) [][]byte {
	start := time.Now()
	defer func() {
		b.Logf("seeded %d accounts with a key and %d days of calls in %v", n, days, time.Since(start).Round(time.Millisecond))
	}()
	l, err := ledger.Open(path, ledger.Options{NodeID: "bench", QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	bodies := make([][]byte, n)
	now := time.Now().UTC()
	created := now.Add(-time.Hour)
	var wg sync.WaitGroup
	const workers = 256
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := seedAccount(l, i, days, created, now, bodies); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "seeded"), nil, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path+".bodies", append(bytes.Join(bodies, []byte("\n")), '\n'), 0o600); err != nil {
		b.Fatal(err)
	}
	return bodies
}

func seedAccount(l *ledger.Ledger, i, days int, created, now time.Time, bodies [][]byte) error {
	ctx := context.Background()
	id := fmt.Sprintf("acct-%06d", i)
	if err := l.PutAccount(ctx, meter.Account{ID: id, Name: id, Plan: "pro", CreatedAt: created}); err != nil {
		return err
	}
	plain, prefix, hash, err := meter.NewKey()
	if err != nil {
		return err
	}
	if err := l.PutKey(ctx, meter.APIKey{ID: meter.NewID("key_"), AccountID: id, Prefix: prefix, Hash: hash, CreatedAt: created}); err != nil {
		return err
	}
	bodies[i] = trackBody(plain)
	// History first, queued without waiting; today's call waits for its
	// commit, and the writer commits in queue order.
	for d := days - 1; d >= 1; d-- {
		if err := appendRetrying(ctx, l, seedEvent(id, now.Add(-time.Duration(d)*24*time.Hour))); err != nil {
			return err
		}
	}
	return l.Append(ctx, seedEvent(id, now), true)
}

func seedEvent(id string, at time.Time) *meter.Event {
	return &meter.Event{Time: at, PeriodStart: meter.PeriodAt(time.Time{}, at).Start, AccountID: id,
		Endpoint: "/v1/orders/{id}", Method: "GET", Status: 200, LatencyMicros: 3000, Decision: meter.Allowed}
}

// appendRetrying queues ev, waiting while the writer's queue is full.
func appendRetrying(ctx context.Context, l *ledger.Ledger, ev *meter.Event) error {
	for {
		err := l.Append(ctx, ev, false)
		if !errors.Is(err, meter.ErrOverloaded) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// driveScenario runs one scenario for dur with the chosen driver.
func driveScenario(b *testing.B, driver string, sc scenario, dur time.Duration) loadgen.Result {
	var r loadgen.Result
	var err error
	if driver == "wrk" {
		r, err = runWrk(b, sc, dur)
	} else {
		bodies := sc.t.bodies
		r, err = loadgen.Run(context.Background(), loadgen.Config{Addr: sc.t.addr, Conns: sc.conns, Duration: dur,
			Request: func(c, i int) []byte {
				return loadgen.PostJSON(sc.t.addr, "/v1/track", bodies[rand.IntN(len(bodies))])
			}})
	}
	if err != nil {
		b.Fatalf("%s: %v", sc.name, err)
	}
	if r.Requests == 0 || r.Codes[200]+r.Codes[503] != r.Requests {
		b.Fatalf("%s: answers other than 200 and 503: %v", sc.name, r)
	}
	return r
}

// wrkScript sends a uniformly random body from the file named by the
// script's argument and prints the run's figures in one parseable line.
const wrkScript = `
local bodies = {}
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1000000))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
request = function()
  return wrk.format(nil, "/v1/track", nil, bodies[math.random(#bodies)])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("METERD requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d sockerr=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
`

var wrkLine = regexp.MustCompile(`METERD requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) non2xx=(\d+) sockerr=(\d+)`)

// runWrk drives sc with wrk -t2. wrk only counts answers that are not
// 2xx/3xx; they are reported as 503s, the one refusal meterd gives under
// load here (every account is pro, which is never denied).
func runWrk(b *testing.B, sc scenario, dur time.Duration) (loadgen.Result, error) {
	dir := b.TempDir()
	script, bodies := filepath.Join(dir, "track.lua"), filepath.Join(dir, "bodies")
	var all []byte
	for _, body := range sc.t.bodies {
		all = append(append(all, body...), '\n')
	}
	if err := os.WriteFile(bodies, all, 0o600); err != nil {
		return loadgen.Result{}, err
	}
	if err := os.WriteFile(script, []byte(wrkScript), 0o600); err != nil {
		return loadgen.Result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur+60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/wrk", "-t2", "-c"+strconv.Itoa(sc.conns),
		"-d"+strconv.Itoa(int(dur.Seconds()))+"s", "--timeout", "10s", "-s", script,
		"http://"+sc.t.addr, "--", bodies).CombinedOutput()
	if err != nil {
		return loadgen.Result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	m := wrkLine.FindStringSubmatch(string(out))
	if m == nil {
		return loadgen.Result{}, errors.New("wrk printed no figures:\n" + string(out))
	}
	n := make([]int64, len(m))
	for i := 1; i < len(m); i++ {
		n[i], _ = strconv.ParseInt(m[i], 10, 64)
	}
	r := loadgen.Result{Requests: n[1], Elapsed: time.Duration(n[2]) * time.Microsecond,
		P50: time.Duration(n[3]) * time.Microsecond, P99: time.Duration(n[4]) * time.Microsecond,
		Errors: n[6], Codes: map[int]int64{200: n[1] - n[5], 503: n[5]}}
	if strings.Contains(string(out), "Socket errors") && n[6] > 0 {
		b.Logf("%s: wrk socket errors: %d", sc.name, n[6])
	}
	return r, nil
}
