package httpapi

import (
	"net/http"
	"sync/atomic"
	"time"
)

// admission bounds the requests being handled at once. Past MaxInFlight a
// request waits in a short queue (at most MaxQueue of them, each at most
// QueueWait); past that it is answered 503 overloaded with Retry-After at
// once. Under a flood this keeps the latency of the calls that are served
// bounded (in flight ÷ throughput) instead of growing with the number of
// connections, and a refusal costs almost nothing.
type admission struct {
	slots   chan struct{}
	waiting atomic.Int64
	queue   int64
	wait    time.Duration
}

func newAdmission(inFlight, queue int, wait time.Duration) *admission {
	if inFlight <= 0 {
		return nil
	}
	return &admission{slots: make(chan struct{}, inFlight), queue: int64(max(queue, 0)), wait: wait}
}

// acquire takes a slot, waiting in the queue if there is room in it; false
// means the request must be refused. A true must be paired with release.
func (a *admission) acquire(r *http.Request) bool {
	select {
	case a.slots <- struct{}{}:
		return true
	default:
	}
	if a.queue == 0 || a.wait <= 0 {
		return false
	}
	if a.waiting.Add(1) > a.queue {
		a.waiting.Add(-1)
		return false
	}
	defer a.waiting.Add(-1)
	t := time.NewTimer(a.wait)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-r.Context().Done():
		return false
	}
}

func (a *admission) release() { <-a.slots }

var errBusy = newError(http.StatusServiceUnavailable, "overloaded",
	"meterd is handling as many requests as it is configured to; retry shortly")

// exemptFromAdmission are the operations routes: health checks and
// scrapes must be answered while meterd sheds load, or it would be
// restarted or go dark exactly then.
func exemptFromAdmission(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics"
}
