package stripe

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of one attempt to charge, the label of charges_total.
const (
	resultSent  = "sent"   // Stripe created the invoice item (or had it already)
	resultFail  = "failed" // Stripe refused it; nothing was charged
	resultError = "error"  // no definite answer; retried with the same key
)

// metrics are the billing collectors. No per-account labels.
type metrics struct {
	charges     *prometheus.CounterVec
	billedCents prometheus.Counter
	pending     prometheus.Gauge
	lastSuccess prometheus.Gauge
	// lateCalls counts overage calls that reached a finalized period and
	// were billed by a late charge; adopted counts items found in Stripe
	// by reconciliation that the ledger did not have.
	lateCalls prometheus.Counter
	adopted   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		charges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meterd_billing_charges_total",
			Help: "Attempts to create an overage invoice item, by result (sent, failed, error).",
		}, []string{"result"}),
		billedCents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meterd_billing_billed_cents_total",
			Help: "Overage billed to Stripe, in cents of the configured currency.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meterd_billing_intents_pending",
			Help: "Billing intents written but not yet confirmed or refused by Stripe.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meterd_billing_last_success_timestamp_seconds",
			Help: "Unix time of the last billing run in which every charge went through.",
		}),
		lateCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meterd_billing_late_calls_total",
			Help: "Overage calls committed into a finalized period, billed by a late charge of the next run.",
		}),
		adopted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meterd_billing_adopted_items_total",
			Help: "Invoice items found in Stripe by reconciliation (after a restore or a lost key) and recorded as billed.",
		}),
	}
	for _, r := range []string{resultSent, resultFail, resultError} {
		m.charges.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.charges, m.billedCents, m.pending, m.lastSuccess, m.lateCalls, m.adopted} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register billing metrics: %w", err)
		}
	}
	return m, nil
}
