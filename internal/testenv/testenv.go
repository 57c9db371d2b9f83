// Package testenv reports, from a test package's TestMain, an
// integration test group that did not run because the environment
// variable enabling it is unset. It is for tests only and never skips
// anything itself: the tests still call t.Skip, and .ci/run, which sets
// every variable, fails on any skip.
package testenv

import (
	"fmt"
	"io"
	"os"
	"testing"
)

// ReportSkipped prints one line naming the group and its variable when
// enabled is false. Call it after m.Run (it reads -v). `go test ./...`
// discards the output of a passing package, so without -v the line goes
// to the terminal (/dev/tty) when there is one; with -v it goes to stdout
// with the rest of the test output.
func ReportSkipped(pkg, group, variable string, enabled bool) {
	if enabled {
		return
	}
	line := fmt.Sprintf("%s: %s skipped: set %s to run them\n", pkg, group, variable)
	if testing.Verbose() {
		io.WriteString(os.Stdout, line)
		return
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
	if err != nil {
		io.WriteString(os.Stdout, line) // shown when the package fails
		return
	}
	io.WriteString(tty, line)
	tty.Close()
}
