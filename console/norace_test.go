//go:build !race

package console_test

// raceEnabled: timing budgets are reported, not enforced, under -race.
const raceEnabled = false
