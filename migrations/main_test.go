package migrations_test

import (
	"os"
	"testing"

	"github.com/meterd/meterd/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.ReportSkipped("migrations", "Postgres migration tests", "METER_TEST_DATABASE_URL",
		os.Getenv("METER_TEST_DATABASE_URL") != "")
	os.Exit(code)
}
