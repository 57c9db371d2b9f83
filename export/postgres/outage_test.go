package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/export/postgres"
	"github.com/meterd/meterd/meter"
)

// faultProxy is a loopback TCP proxy to Postgres that can cut every
// connection and refuse new ones until healed: a database outage as the
// exporter sees it.
type faultProxy struct {
	ln     net.Listener
	target string

	// mu guards the fields below.
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *faultProxy) handle(client net.Conn) {
	if !p.track(client) {
		client.Close() // refused while down
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil || !p.track(server) {
		client.Close()
		if server != nil {
			server.Close()
		}
		return
	}
	go pipe(server, client)
	pipe(client, server)
}

// pipe copies until either side fails, then closes both.
func pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// track registers c unless the proxy is down.
func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// cut drops every connection and refuses new ones until heal.
func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *faultProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func TestExporter_Outage(t *testing.T) {
	db := mustDatabase(t)
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	proxy := startFaultProxy(t, target)
	u.Host = proxy.ln.Addr().String()

	l := mustOpenLedger(t)
	g := newEventGen(9, 4, 3)
	e, reg := mustExporter(t, l, postgres.Config{
		DatabaseURL: u.String(), BatchSize: 250, FlushInterval: 50 * time.Millisecond,
		MaxBackoff: 400 * time.Millisecond, WriteTimeout: 3 * time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- e.Run(ctx) }()

	// Meter continuously for the whole test: 60 durable appends of 50
	// events each, one every 50ms, i.e. 3000 events over about 3 seconds.
	meterDone := make(chan time.Duration, 1)
	go func() { meterDone <- meterSteadily(t, l, g, 60, 50) }()

	time.Sleep(700 * time.Millisecond)
	proxy.cut()
	time.Sleep(300 * time.Millisecond)
	backlogDuringOutage := waitBacklogAbove(t, e, 200, 5*time.Second)
	time.Sleep(1200 * time.Millisecond)
	proxy.heal()

	slowest := <-meterDone
	if slowest > time.Second {
		t.Errorf("an append took %v during the outage: metering paused", slowest)
	}
	waitBacklogZero(t, e, 15*time.Second)
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("Run = %v", err)
	}
	assertMatchesLedger(t, db, l, g)
	if errs := metricValue(t, reg, "meterd_export_errors_total"); errs == 0 {
		t.Fatal("no export errors counted: the outage did not reach the exporter")
	}
	if gauge := metricValue(t, reg, "meterd_export_backlog_events"); gauge != 0 {
		t.Fatalf("backlog gauge = %v after recovery", gauge)
	}
	t.Logf("backlog during outage reached %d events; slowest append %v; %v export errors",
		backlogDuringOutage, slowest, metricValue(t, reg, "meterd_export_errors_total"))
}

// meterSteadily appends rounds of n events, each round waiting for its
// commit, and returns the slowest round.
func meterSteadily(t *testing.T, l appender, g *eventGen, rounds, n int) time.Duration {
	var slowest time.Duration
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := l.Append(context.Background(), g.next(), i == n-1); err != nil {
				t.Errorf("append: %v", err)
				return slowest
			}
		}
		slowest = max(slowest, time.Since(start))
		time.Sleep(50 * time.Millisecond)
	}
	return slowest
}

type appender interface {
	Append(ctx context.Context, ev *meter.Event, wait bool) error
}

// waitBacklogAbove waits until the backlog exceeds n and returns it.
func waitBacklogAbove(t *testing.T, e *postgres.Exporter, n uint64, timeout time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, _, err := e.Backlog(context.Background())
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if got > n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog stayed at %d during the outage", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
