package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/internal/loadgen"
)

// BenchmarkLoad_Cluster compares the loopback throughput of one meterd
// (no cluster) with three cluster nodes sharing the test Postgres, all in
// sync durability and on a hard-limited plan the load never exhausts, so
// every cluster decision comes from leases. 64 keep-alive connections in
// both cases (split over the three nodes). Rounds alternate one, three,
// one, three. On two shared cores the three nodes compete for the same
// CPU, so the ratio says what the cluster costs, not what it scales to.
//
//	go test -run '^$' -bench BenchmarkLoad_Cluster -benchtime 1x ./cmd/meterd/
//
// METER_BENCH_SECONDS sets the time per run (default 5).
func BenchmarkLoad_Cluster(b *testing.B) {
	secs := 5
	if v, err := strconv.Atoi(os.Getenv("METER_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	dur := time.Duration(secs) * time.Second
	plans := filepath.Join(b.TempDir(), "plans.yaml")
	os.WriteFile(plans, []byte("plans:\n  bighard: {limit: 1000000000, hard: true}\n"), 0o600)
	var one, three []float64
	for round := 0; round < 2; round++ {
		one = append(one, runNodes(b, 1, dur, plans))
		three = append(three, runNodes(b, 3, dur, plans))
	}
	for i := range one {
		b.Logf("round %d: one node %.0f req/s, three nodes %.0f req/s, ratio %.2f", i+1, one[i], three[i], three[i]/one[i])
	}
	b.ReportMetric((three[0]/one[0]+three[1]/one[1])/2, "three/one")
}

// runNodes starts n nodes (a cluster when n > 1), drives 64 connections
// spread over them for dur, and returns the total requests per second.
func runNodes(b *testing.B, n int, dur time.Duration, plans string) float64 {
	var dbURL string
	if n > 1 {
		dbURL, _ = mustClusterDB(b)
	}
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = freeAddr(b)
		args := []string{"serve", "--data-dir", b.TempDir(), "--listen", addrs[i], "--durability", "sync",
			"--log-level", "warn", "--plans", plans}
		if n > 1 {
			args = append(args, "--cluster", "--database-url", dbURL, "--node-id", fmt.Sprintf("n%d", i+1))
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "METER_ADMIN_TOKEN="+adminToken)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
		waitPort(b, addrs[i])
	}
	keys := make([][]byte, 16)
	for c := range keys {
		key := setupAccountAt(b, "http://"+addrs[0], fmt.Sprintf("load-%d", c), "bighard")
		keys[c] = fmt.Appendf(nil, `{"api_key":%q,"endpoint":"/v1/orders/1","method":"GET","status":200}`, key)
	}
	time.Sleep(time.Second) // the keys reach the other nodes
	var mu sync.Mutex
	var rps float64
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: addr, Conns: 64 / n, Duration: dur,
				Request: func(c, i int) []byte { return loadgen.PostJSON(addr, "/v1/track", keys[c%len(keys)]) }})
			if err != nil || r.Codes[200] != r.Requests || r.Requests == 0 {
				b.Errorf("%s: %v %v", addr, r, err)
				return
			}
			b.Log(n, "node(s):", addr, r)
			mu.Lock()
			rps += r.RPS()
			mu.Unlock()
		}()
	}
	wg.Wait()
	return rps
}
