// Package loadgen is a small HTTP/1.1 load generator for meterd's
// loopback benchmarks: N keep-alive connections, each sending its next
// request as soon as the previous answer is read (closed loop) or at a
// fixed rate (Config.Rate), for a bounded time and count. It writes requests by hand and parses answers with
// net/http.ReadResponse, so the generator costs little CPU on the cores it
// shares with the server under test.
//
// It refuses any target that is not a loopback address.
package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Config describes one run.
type Config struct {
	// Addr is host:port of the server; it must be on loopback.
	Addr string
	// Conns is the number of concurrent keep-alive connections (default 64).
	Conns int
	// Duration bounds the run (default 10s); MaxRequests bounds it too (0:
	// no count bound).
	Duration    time.Duration
	MaxRequests int64
	// Request returns the raw HTTP/1.1 request bytes for connection c's
	// i-th request (it must include Host and Content-Length headers).
	Request func(c, i int) []byte
	// Rate, when > 0, paces the run to Rate requests per second in all
	// (each connection sends every Conns/Rate seconds) instead of as fast
	// as answers come back: a client at a fixed rate, as a production
	// caller or a misbehaving one is. A late request is sent at once and
	// its latency is counted from when it was due, so a stalled server
	// shows in the percentiles (no coordinated omission).
	Rate float64
}

// Result summarises a run.
type Result struct {
	Requests int64
	Errors   int64
	Codes    map[int]int64
	Elapsed  time.Duration
	P50, P99 time.Duration
	// OKP99 is the p99 of the 2xx answers alone (the calls served when
	// others were shed).
	OKP99 time.Duration
}

// RPS is requests per second.
func (r Result) RPS() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// Refused is the share of answers that were 503 (shed load).
func (r Result) Refused() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Codes[http.StatusServiceUnavailable]) / float64(r.Requests)
}

func (r Result) String() string {
	return fmt.Sprintf("%d req in %v = %.0f req/s, p50 %v, p99 %v, errors %d, codes %v",
		r.Requests, r.Elapsed.Round(time.Millisecond), r.RPS(), r.P50, r.P99, r.Errors, r.Codes)
}

// ErrNotLoopback: the target is not on this machine's loopback.
var ErrNotLoopback = errors.New("loadgen: target must be a loopback address")

// Run drives the load and returns when time or count runs out or ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := checkLoopback(cfg.Addr); err != nil {
		return Result{}, err
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 64
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var budget budget
	budget.left = cfg.MaxRequests
	workers := make([]*worker, cfg.Conns)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range workers {
		workers[c] = &worker{id: c, cfg: &cfg, budget: &budget, codes: map[int]int64{}}
		if cfg.Rate > 0 { // connections' schedules spread over one interval
			workers[c].interval = time.Duration(float64(cfg.Conns) / cfg.Rate * float64(time.Second))
			workers[c].due = start.Add(workers[c].interval * time.Duration(c) / time.Duration(cfg.Conns))
		}
		wg.Add(1)
		go func(w *worker) { defer wg.Done(); w.run(ctx) }(workers[c])
	}
	wg.Wait()
	return merge(workers, time.Since(start)), nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return ErrNotLoopback
}

// budget hands out request slots when a count bound is set.
type budget struct {
	mu   sync.Mutex
	left int64 // 0 means unbounded
	used int64
}

func (b *budget) take() bool {
	if b.left == 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used >= b.left {
		return false
	}
	b.used++
	return true
}

func (b *budget) spent() bool {
	if b.left == 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used >= b.left
}

type worker struct {
	id        int
	cfg       *Config
	budget    *budget
	requests  int64
	errors    int64
	codes     map[int]int64
	latencies []time.Duration
	ok        []time.Duration // latencies of 2xx answers
	// interval and due pace a Rate run: due is when the next request is
	// to be sent.
	interval time.Duration
	due      time.Time
}

// wait sleeps until the next paced request is due and returns the time
// its latency counts from; unpaced, it returns now.
func (w *worker) wait(ctx context.Context) time.Time {
	now := time.Now()
	if w.interval == 0 {
		return now
	}
	due := w.due
	w.due = due.Add(w.interval)
	if d := due.Sub(now); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	return due
}

func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := w.connection(ctx); err != nil && ctx.Err() == nil {
			w.errors++
			if ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}
		if w.budget.spent() {
			return
		}
	}
}

// connection sends requests over one connection until it fails or the run
// ends.
func (w *worker) connection(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", w.cfg.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReaderSize(conn, 16<<10)
	for i := 0; ctx.Err() == nil && w.budget.take(); i++ {
		t0 := w.wait(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if _, err := conn.Write(w.cfg.Request(w.id, i)); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		took := time.Since(t0)
		w.latencies = append(w.latencies, took)
		if resp.StatusCode/100 == 2 {
			w.ok = append(w.ok, took)
		}
		w.requests++
		w.codes[resp.StatusCode]++
		if resp.Close {
			return nil
		}
	}
	return nil
}

func merge(workers []*worker, elapsed time.Duration) Result {
	r := Result{Codes: map[int]int64{}, Elapsed: elapsed}
	var all, ok []time.Duration
	for _, w := range workers {
		ok = append(ok, w.ok...)
		r.Requests += w.requests
		r.Errors += w.errors
		for c, n := range w.codes {
			r.Codes[c] += n
		}
		all = append(all, w.latencies...)
	}
	if len(all) > 0 {
		slices.Sort(all)
		r.P50 = all[len(all)/2]
		r.P99 = all[len(all)*99/100]
	}
	if len(ok) > 0 {
		slices.Sort(ok)
		r.OKP99 = ok[len(ok)*99/100]
	}
	return r
}

// PostJSON builds a raw POST request with a JSON body and extra headers.
func PostJSON(host, path string, body []byte, headers ...string) []byte {
	b := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, host, len(body))
	for i := 0; i+1 < len(headers); i += 2 {
		b = fmt.Appendf(b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// Get builds a raw GET request with extra headers.
func Get(host, path string, headers ...string) []byte {
	b := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, host)
	for i := 0; i+1 < len(headers); i += 2 {
		b = fmt.Appendf(b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	return append(b, "\r\n"...)
}
