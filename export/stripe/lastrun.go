package stripe

import (
	"sync"
	"time"

	"github.com/meterd/meterd/meter"
)

// lastRun remembers the outcome of the latest real billing run in this
// process (scheduled or asked for), so operators can see it without
// reading logs.
type lastRun struct {
	mu  sync.Mutex
	rep *meter.BillingReport
	err string
}

// record keeps rep (finished at the given time: the caller stamps the
// report itself only after this) and err.
func (l *lastRun) record(rep meter.BillingReport, err error, finished time.Time) {
	rep.Lines = nil // the summary is enough; the lines can be large
	if rep.FinishedAt.IsZero() {
		rep.FinishedAt = finished
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rep, l.err = &rep, ""
	if err != nil {
		l.err = err.Error()
	}
}

// LastRun returns the latest real run's report (without its lines) and
// its error text ("" if it completed); ok is false before the first run.
func (s *Service) LastRun() (rep meter.BillingReport, errText string, ok bool) {
	s.last.mu.Lock()
	defer s.last.mu.Unlock()
	if s.last.rep == nil {
		return meter.BillingReport{}, "", false
	}
	return *s.last.rep, s.last.err, true
}
