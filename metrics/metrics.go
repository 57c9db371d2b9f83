// Package metrics defines every Prometheus collector meterd exports and
// their names (meterd_<subsystem>_<name>_<unit>). Collectors register on
// the Registerer they are given: there is no global registry.
//
// Labels stay low-cardinality (plan, outcome, route template, code):
// metrics must never carry an account id, key or raw path.
package metrics

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds meterd's collectors. It implements httpapi.Observer and
// ledger.CommitObserver.
type Metrics struct {
	decisions       *prometheus.CounterVec
	decisionSeconds prometheus.Histogram
	requests        *prometheus.CounterVec
	requestSeconds  *prometheus.HistogramVec
	commitSeconds   prometheus.Histogram
	commitOps       prometheus.Histogram
	commitErrors    prometheus.Counter
	commitRetries   prometheus.Counter
	retryPending    prometheus.Gauge
	// decisionCounts caches decisions' children by plan and outcome.
	decisionCounts labelCache[planOutcome, prometheus.Counter]
}

// New creates the collectors and registers them, with the Go and process
// collectors, on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meterd_meter_decisions_total", Help: "Metered calls by plan and outcome (allowed, overage, denied).",
		}, []string{"plan", "outcome"}),
		decisionSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meterd_meter_decision_duration_seconds", Help: "Time to decide and record one call, commit wait included.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14),
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meterd_http_requests_total", Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meterd_http_request_duration_seconds", Help: "HTTP request duration by route template.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}, []string{"route"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meterd_ledger_commit_duration_seconds", Help: "Duration of one ledger group commit, fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		commitOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meterd_ledger_commit_batch_size", Help: "Writes per ledger group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meterd_ledger_commit_errors_total", Help: "Ledger group commits that failed (fsync or write errors).",
		}),
		commitRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meterd_ledger_commit_retries_total", Help: "Waits before retrying a failed group commit that holds answered writes.",
		}),
		retryPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meterd_ledger_retry_pending_writes", Help: "Answered writes held for a retried commit; while above 0 new writes get 503.",
		}),
	}
	reg.MustRegister(m.commitRetries, m.retryPending)
	reg.MustRegister(m.decisions, m.decisionSeconds, m.requests, m.requestSeconds,
		m.commitSeconds, m.commitOps, m.commitErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveDecision counts one decision.
func (m *Metrics) ObserveDecision(plan string, allowed, overage bool, took time.Duration) {
	outcome := "allowed"
	switch {
	case !allowed:
		outcome = "denied"
	case overage:
		outcome = "overage"
	}
	m.decisionCounts.get(planOutcome{plan, outcome}, func() prometheus.Counter {
		return m.decisions.WithLabelValues(plan, outcome)
	}).Inc()
	m.decisionSeconds.Observe(took.Seconds())
}

// ObserveRequest counts one HTTP request.
func (m *Metrics) ObserveRequest(route, method string, code int, took time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.requestSeconds.WithLabelValues(route).Observe(took.Seconds())
}

// ObserveCommit records one ledger group commit.
func (m *Metrics) ObserveCommit(ops int, took time.Duration, err error) {
	m.commitSeconds.Observe(took.Seconds())
	m.commitOps.Observe(float64(ops))
	if err != nil {
		m.commitErrors.Inc()
	}
}

// ObserveCommitRetry implements ledger.RetryObserver.
func (m *Metrics) ObserveCommitRetry(pending int, err error) {
	if pending > 0 {
		m.commitRetries.Inc()
	}
	m.retryPending.Set(float64(pending))
}

// RegisterGauge registers a gauge whose value is read at scrape time.
func RegisterGauge(reg prometheus.Registerer, name, help string, fn func() float64) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// RegisterBuildInfo registers meterd_build_info{version} = 1.
func RegisterBuildInfo(reg prometheus.Registerer, version string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meterd_build_info", Help: "Build information; the value is always 1.",
	}, []string{"version"})
	g.WithLabelValues(version).Set(1)
	reg.MustRegister(g)
}

// RegisterDiskFree registers meterd_ledger_disk_free_bytes, read from free
// at scrape time (NaN while the probe fails), and
// meterd_ledger_disk_floor_bytes, the configured floor below which the
// ledger refuses writes (0: no floor). Alert on free nearing the floor.
func RegisterDiskFree(reg prometheus.Registerer, floor uint64, free func() (uint64, error)) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meterd_ledger_disk_free_bytes",
			Help: "Free space of the file system holding the ledger, as the disk floor sees it.",
		}, func() float64 {
			n, err := free()
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meterd_ledger_disk_floor_bytes",
			Help: "Free space below which the ledger refuses writes (0: no floor).",
		}, func() float64 { return float64(floor) }),
	)
}
