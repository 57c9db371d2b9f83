package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// labelCache maps a small, slowly growing set of label keys to their
// metric children. Reads are one atomic load and one map lookup without
// allocating; a new key copies the map under mu. Past maxCached keys
// (a client inventing methods, say) children are looked up uncached.
type labelCache[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex // serialises copy-on-write inserts
}

func (c *labelCache[K, V]) get(k K, child func() V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	next := child()
	if old != nil && len(*old) >= maxCached {
		return next
	}
	m := map[K]V{k: next}
	if old != nil {
		for k2, v2 := range *old {
			m[k2] = v2
		}
	}
	c.m.Store(&m)
	return next
}

// maxCached bounds a labelCache.
const maxCached = 256

type methodCode struct {
	method string
	code   int
}

// routeMetrics is one route's request metrics with the label lookups
// done once: the duration histogram's child, and the counters by method
// and status code as they are first seen.
type routeMetrics struct {
	m       *Metrics
	route   string
	seconds prometheus.Observer
	counts  labelCache[methodCode, prometheus.Counter]
}

// ForRoute returns the request observer of one route template, for
// callers that know the route before the request (httpapi caches one per
// route). It counts exactly what ObserveRequest counts.
func (m *Metrics) ForRoute(route string) func(method string, code int, took time.Duration) {
	rm := &routeMetrics{m: m, route: route, seconds: m.requestSeconds.WithLabelValues(route)}
	return rm.observe
}

func (rm *routeMetrics) observe(method string, code int, took time.Duration) {
	rm.counts.get(methodCode{method, code}, func() prometheus.Counter {
		return rm.m.requests.WithLabelValues(rm.route, method, strconv.Itoa(code))
	}).Inc()
	rm.seconds.Observe(took.Seconds())
}

type planOutcome struct{ plan, outcome string }
