package loadgen_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterd/meterd/internal/loadgen"
)

func TestRun_RefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:80", "192.168.1.1:80", "example.com:80"} {
		if _, err := loadgen.Run(context.Background(), loadgen.Config{Addr: addr}); !errors.Is(err, loadgen.ErrNotLoopback) {
			t.Errorf("%s: got %v, want ErrNotLoopback", addr, err)
		}
	}
}

func TestRun_BoundedCount(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: addr, Conns: 4, Duration: 10 * time.Second,
		MaxRequests: 200, Request: func(c, i int) []byte { return loadgen.Get(addr, "/") }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 200 || r.Codes[200] != 200 || served.Load() != 200 {
		t.Fatalf("result %v, server saw %d; want exactly 200", r, served.Load())
	}
	if r.P50 <= 0 || r.P99 < r.P50 {
		t.Fatalf("latencies p50 %v p99 %v", r.P50, r.P99)
	}
}

// TestRun_Rate: a paced run sends about Rate requests per second, however
// fast the server answers.
func TestRun_Rate(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: addr, Conns: 4, Duration: time.Second,
		Rate: 200, Request: func(c, i int) []byte { return loadgen.Get(addr, "/") }})
	if err != nil {
		t.Fatal(err)
	}
	// 200/s for 1s: allow for the schedule's start and a loaded machine.
	if r.Requests < 150 || r.Requests > 210 || r.Codes[200] != r.Requests {
		t.Fatalf("paced at 200/s for 1s: %v", r)
	}
}
