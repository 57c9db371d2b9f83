package postgres

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the exporter's collectors. They carry no labels: there is one
// Postgres exporter per process, and per-account labels are never used.
type metrics struct {
	batches    prometheus.Counter
	rows       prometheus.Counter
	duplicates prometheus.Counter
	errors     prometheus.Counter
	backlog    prometheus.Gauge
	lag        prometheus.Gauge
	duration   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meterd_export_batches_total",
			Help: "Batches of ledger events committed to Postgres.",
		}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meterd_export_rows_total",
			Help: "Rows inserted into eco_api_usage.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meterd_export_duplicate_rows_total",
			Help: "Exported events found already in Postgres (replays after a crash or an unknown commit outcome); they change nothing.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meterd_export_errors_total",
			Help: "Failed export attempts (Postgres or ledger errors); each is retried.",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meterd_export_backlog_events",
			Help: "Ledger events not yet exported to Postgres.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meterd_export_lag_seconds",
			Help: "Age of the oldest ledger event not yet exported to Postgres (0 when none).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meterd_export_batch_duration_seconds",
			Help:    "Time to write one batch to Postgres, commit included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12), // 5ms .. ~10s
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.batches, m.rows, m.duplicates, m.errors, m.backlog, m.lag, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register export metrics: %w", err)
		}
	}
	return m, nil
}
