package meter

import "time"

// Usage is a set of call totals: a day, a day × endpoint, or a period.
type Usage struct {
	// Calls counts allowed calls (overage included).
	Calls   int64
	Overage int64
	Denied  int64
	// Errors counts calls the API answered with a 5xx; ClientErrors 4xx.
	Errors       int64
	ClientErrors int64
	// LatencySumMicros and LatencyCount give the mean latency of the calls
	// that reported one.
	LatencySumMicros int64
	LatencyCount     int64
}

// Add accumulates o into u.
func (u *Usage) Add(o Usage) {
	u.Calls += o.Calls
	u.Overage += o.Overage
	u.Denied += o.Denied
	u.Errors += o.Errors
	u.ClientErrors += o.ClientErrors
	u.LatencySumMicros += o.LatencySumMicros
	u.LatencyCount += o.LatencyCount
}

// AddEvent accumulates one event into u, by the counting rule (see
// Counter.Count) plus the status and latency a day's usage keeps.
func (u *Usage) AddEvent(ev *Event) {
	if !countCall(ev, &u.Calls, &u.Overage, &u.Denied) {
		return
	}
	if ev.IsError() {
		u.Errors++
	} else if ev.IsClientError() {
		u.ClientErrors++
	}
	if ev.LatencyMicros > 0 {
		u.LatencySumMicros += ev.LatencyMicros
		u.LatencyCount++
	}
}

// AvgLatencyMS is the mean reported latency in milliseconds (0 if none).
func (u *Usage) AvgLatencyMS() float64 {
	if u.LatencyCount == 0 {
		return 0
	}
	return float64(u.LatencySumMicros) / float64(u.LatencyCount) / 1000
}

// DailyUsage is one account's (or everyone's) usage on one UTC day.
type DailyUsage struct {
	Day time.Time
	Usage
}

// EndpointUsage is usage for one endpoint template and method.
type EndpointUsage struct {
	Endpoint string
	Method   string
	Usage
}
