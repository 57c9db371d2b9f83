package webhook

import (
	"context"
	"time"

	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// dispatchMetrics are the meterd_webhook_* series. No per-endpoint or
// per-account labels: their number is not bounded.
type dispatchMetrics struct {
	delivered prometheus.Counter
	failed    prometheus.Counter
	dead      prometheus.Counter
	duration  prometheus.Histogram
	lag       prometheus.Histogram
}

func newDispatchMetrics(reg prometheus.Registerer, store meter.WebhookStore) *dispatchMetrics {
	if reg == nil {
		reg = prometheus.NewRegistry() // nobody scrapes it
	}
	// Full names, not a prefix wrapper: deploy's tests find every metric
	// the dashboards and alerts may use by its literal name.
	f := promauto.With(reg)
	gauge := func(name, help string, fn func(context.Context) (int, error)) {
		f.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, _ := fn(ctx)
			return float64(n)
		})
	}
	gauge("meterd_webhook_pending_deliveries", "Deliveries waiting for a first attempt or a retry, over all endpoints.", store.PendingCount)
	gauge("meterd_webhook_outbox_notices", "Notices held in the ledger's outbox.", store.NoticeCount)
	return &dispatchMetrics{
		delivered: f.NewCounter(prometheus.CounterOpts{Name: "meterd_webhook_delivered_total", Help: "Deliveries answered 2xx."}),
		failed:    f.NewCounter(prometheus.CounterOpts{Name: "meterd_webhook_failed_attempts_total", Help: "Delivery attempts that got no 2xx."}),
		dead:      f.NewCounter(prometheus.CounterOpts{Name: "meterd_webhook_dead_lettered_total", Help: "Deliveries given up after their last attempt (dead letter)."}),
		duration: f.NewHistogram(prometheus.HistogramOpts{Name: "meterd_webhook_attempt_duration_seconds",
			Help: "Time of one delivery attempt.", Buckets: prometheus.ExponentialBuckets(0.005, 4, 8)}),
		lag: f.NewHistogram(prometheus.HistogramOpts{Name: "meterd_webhook_delivery_latency_seconds",
			Help: "From the notice to its successful delivery.", Buckets: prometheus.ExponentialBuckets(0.05, 4, 10)}),
	}
}
