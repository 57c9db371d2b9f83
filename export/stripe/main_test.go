package stripe_test

import (
	"os"
	"testing"

	"github.com/meterd/meterd/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.ReportSkipped("export/stripe", "stripe-mock request-shape tests", "METER_TEST_STRIPE_MOCK_URL",
		os.Getenv("METER_TEST_STRIPE_MOCK_URL") != "")
	os.Exit(code)
}
