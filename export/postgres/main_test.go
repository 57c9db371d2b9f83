package postgres_test

import (
	"os"
	"testing"

	"github.com/meterd/meterd/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.ReportSkipped("export/postgres", "Postgres integration tests", "METER_TEST_DATABASE_URL",
		os.Getenv("METER_TEST_DATABASE_URL") != "")
	os.Exit(code)
}
