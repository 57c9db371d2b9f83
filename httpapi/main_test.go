package httpapi_test

import (
	"os"
	"testing"

	"github.com/meterd/meterd/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.ReportSkipped("httpapi", "nginx recipe tests", "METER_TEST_NGINX", nginxBinary() != "")
	os.Exit(code)
}
