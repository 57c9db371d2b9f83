package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// TestServe_CrashSafety runs meterd in sync durability, drives concurrent
// /v1/track load, SIGKILLs it at a random moment, and checks after every
// round that each call answered 200 is in the ledger exactly once and that
// the counters equal the events; the restarted server must report the
// same counters.
func TestServe_CrashSafety(t *testing.T) {
	crashRounds(t, 5)
}

// TestServe_CrashDuringCheckpoint is the same with a checkpoint every 50
// events or 5 ms, so most SIGKILLs land while one is being written: the
// file must still open with counters equal to its events (the checkpoint
// is one bbolt transaction, and Open replays what it did not cover).
func TestServe_CrashDuringCheckpoint(t *testing.T) {
	crashRounds(t, 5, "--checkpoint-events", "50", "--checkpoint-interval", "5ms")
}

func crashRounds(t *testing.T, rounds int, args ...string) {
	dir := t.TempDir()
	var key string
	acked := map[string]bool{}
	var wantCalls int64 = -1
	for round := 0; round < rounds; round++ {
		p := startServe(t, dir, append([]string{"--durability", "sync"}, args...)...)
		p.waitReady(t)
		if key == "" {
			key = setupAccount(t, p, "crash", "pro")
		}
		if wantCalls >= 0 {
			var cur struct {
				APICalls int64 `json:"api_calls"`
			}
			do(t, "GET", p.base+"/api/usage/current?account_id=crash", adminToken, nil, &cur)
			if cur.APICalls != wantCalls {
				t.Fatalf("round %d: restart reports %d calls, ledger held %d", round, cur.APICalls, wantCalls)
			}
		}
		ids := loadUntilKilled(t, p, key, time.Duration(200+rand.IntN(600))*time.Millisecond)
		for _, id := range ids {
			acked[id] = true
		}
		wantCalls = verifyLedger(t, filepath.Join(dir, "meter.db"), acked)
		t.Logf("round %d: %d acked so far, ledger holds %d calls", round, len(acked), wantCalls)
	}
	if len(acked) == 0 {
		t.Fatal("no call was acknowledged: the test measured nothing")
	}
}

// loadUntilKilled sends tracks from 16 clients and SIGKILLs the server
// after d; it returns the event ids of every 200 answer.
func loadUntilKilled(t *testing.T, p *proc, key string, d time.Duration) []string {
	t.Helper()
	var mu sync.Mutex
	var ids []string
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"api_key": key, "endpoint": "/v1/orders/42", "method": "POST", "status": 201})
			for ctx.Err() == nil {
				id, ok := trackOnce(ctx, client, p.base, body)
				if !ok {
					continue
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(d)
	p.cmd.Process.Kill() // SIGKILL: no shutdown hooks run
	p.waitExit(t, 10*time.Second)
	cancel()
	wg.Wait()
	return ids
}

func trackOnce(ctx context.Context, client *http.Client, base string, body []byte) (string, bool) {
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/track", bytes.NewReader(body))
	resp, err := client.Do(req)
	if err != nil {
		time.Sleep(time.Millisecond)
		return "", false
	}
	defer resp.Body.Close()
	var out struct {
		EventID string `json:"event_id"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil || out.EventID == "" {
		return "", false
	}
	return out.EventID, true
}

// verifyLedger opens the ledger of a dead server and checks every acked id
// is there exactly once and that the counter equals the allowed events.
func verifyLedger(t *testing.T, path string, acked map[string]bool) int64 {
	t.Helper()
	// What `meterd verify` sees first: the file exactly as the kill left it.
	if rep, err := ledger.VerifyFile(context.Background(), path); err != nil || !rep.OK {
		t.Fatalf("verify the killed server's file: %v %+v", err, rep)
	}
	l, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	seen := map[string]int{}
	perPeriod := map[time.Time]int64{}
	for after := uint64(0); ; {
		evs, err := l.EventsAfter(ctx, after, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for i := range evs {
			seen[evs[i].ID()]++
			if evs[i].Decision == meter.Allowed && evs[i].AccountID == "crash" {
				perPeriod[evs[i].PeriodStart]++
			}
		}
		after = evs[len(evs)-1].Seq
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Fatalf("acknowledged event %s found %d times in the ledger", id, seen[id])
		}
	}
	var total int64
	for period, n := range perPeriod {
		c, err := l.Counter(ctx, "crash", period)
		if err != nil || c.Calls != n {
			t.Fatalf("counter for %v = %d, events say %d (%v)", period, c.Calls, n, err)
		}
		total += n
	}
	return total
}

// TestServe_GracefulShutdown sends calls in async durability (answered
// before their commit), then SIGTERM: meterd must commit its whole queue
// before it exits 0.
func TestServe_GracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, "--durability", "async")
	p.waitReady(t)
	key := setupAccount(t, p, "grace", "pro")
	const n = 2000
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	body, _ := json.Marshal(map[string]any{"api_key": key, "endpoint": "/v1/x", "method": "GET"})
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/8; i++ {
				resp, err := http.Post(p.base+"/v1/track", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if ok != n {
		t.Fatalf("%d of %d answered 200", ok, n)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.waitExit(t, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr)
	}
	l, err := ledger.Open(filepath.Join(dir, "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if seq, _ := l.LastSeq(context.Background()); seq != n {
		t.Fatalf("ledger holds %d events after shutdown, want %d", seq, n)
	}
}
