package meter

import "time"

// Period is one billing period, the half-open interval [Start, End) in UTC.
type Period struct {
	Start, End time.Time
}

// Contains reports whether t falls in the period. End belongs to the next
// period, so a call at exactly midnight is never counted twice.
func (p Period) Contains(t time.Time) bool {
	return !t.Before(p.Start) && t.Before(p.End)
}

// PeriodAt returns the billing period that contains t.
//
// With a zero anchor periods are calendar months in UTC. With an anchor
// (the instant a subscription started) periods run from anchor to anchor
// monthly, as Stripe bills them: each boundary has the anchor's day of month
// and time of day (in UTC), the day clamped to the month's last day, so an
// anchor on Jan 31 gives Feb 28 (29), then Mar 31, then Apr 30. Times before
// the anchor fall in periods that extend backwards the same way.
func PeriodAt(anchor, t time.Time) Period {
	if anchor.IsZero() {
		return calendarMonth(t)
	}
	return anchoredPeriod(anchor.UTC(), t)
}

// calendarMonth returns the UTC calendar month containing t. time.Date
// normalises month 13 to January of the next year, so December needs no
// special case.
func calendarMonth(t time.Time) Period {
	y, m, _ := t.UTC().Date()
	return Period{
		Start: time.Date(y, m, 1, 0, 0, 0, 0, time.UTC),
		End:   time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// anchoredPeriod finds the period in O(1): the boundary in t's own month
// is either at or before t (t's period starts there) or after it (t's
// period started a month earlier).
func anchoredPeriod(anchor, t time.Time) Period {
	ay, am, _ := anchor.Date()
	ty, tm, _ := t.UTC().Date()
	k := (ty-ay)*12 + int(tm-am)
	start := anchorBoundary(anchor, k)
	if start.After(t) {
		k--
		start = anchorBoundary(anchor, k)
	}
	return Period{Start: start, End: anchorBoundary(anchor, k+1)}
}

// anchorBoundary returns the k-th period boundary after a UTC anchor (k may
// be negative). It is always computed from the anchor itself, never from a
// previous boundary, so a clamp to Feb 28 does not stick for March.
func anchorBoundary(anchor time.Time, k int) time.Time {
	ay, am, ad := anchor.Date()
	// Day 1 never overflows, so time.Date only normalises the month here.
	y, m, _ := time.Date(ay, am+time.Month(k), 1, 0, 0, 0, 0, time.UTC).Date()
	d := min(ad, daysInMonth(y, m))
	h, mi, s := anchor.Clock()
	return time.Date(y, m, d, h, mi, s, anchor.Nanosecond(), time.UTC)
}

// daysInMonth returns the number of days in month m of year y: day 0 of
// the next month is the last day of this one.
func daysInMonth(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// DayOf returns the start of t's day in UTC, the key of daily aggregates.
func DayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
