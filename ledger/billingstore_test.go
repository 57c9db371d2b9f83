package ledger_test

import (
	"testing"

	"github.com/meterd/meterd/internal/billingtest"
	"github.com/meterd/meterd/meter"
)

// TestLedger_BillingStoreConformance runs the ledger through the suite
// every meter.BillingStore passes (the cluster's Postgres store too).
func TestLedger_BillingStoreConformance(t *testing.T) {
	billingtest.RunStoreSuite(t, func(t *testing.T) meter.BillingStore { return openBillingLedger(t, "") })
}

// BenchmarkLedger_BillingCharge: one charge's store writes on the ledger
// (compare cluster BenchmarkBilling_Charge).
func BenchmarkLedger_BillingCharge(b *testing.B) {
	billingtest.BenchCharge(b, openBillingLedger(b, ""))
}
