package meter_test

import (
	"testing"
	"time"
	_ "time/tzdata" // the zone tests must not depend on the host's zoneinfo

	"github.com/meterd/meterd/meter"
)

// periodCase is one PeriodAt expectation; a zero anchor means calendar months.
type periodCase struct {
	name       string
	anchor     time.Time
	t          time.Time
	start, end time.Time
}

func periodTime(y int, m time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, m, d, h, mi, s, ns, time.UTC)
}

func periodDay(y int, m time.Month, d int) time.Time { return periodTime(y, m, d, 0, 0, 0, 0) }

func calendarPeriodCases() []periodCase {
	return []periodCase{
		{"MidMonth", time.Time{}, periodTime(2025, 3, 15, 12, 0, 0, 0), periodDay(2025, 3, 1), periodDay(2025, 4, 1)},
		{"FirstInstant", time.Time{}, periodDay(2025, 3, 1), periodDay(2025, 3, 1), periodDay(2025, 4, 1)},
		{"LastNanoOfJanuary", time.Time{}, periodTime(2025, 1, 31, 23, 59, 59, 999999999), periodDay(2025, 1, 1), periodDay(2025, 2, 1)},
		{"BoundaryIsNewPeriod", time.Time{}, periodDay(2025, 2, 1), periodDay(2025, 2, 1), periodDay(2025, 3, 1)},
		{"April30", time.Time{}, periodTime(2025, 4, 30, 23, 0, 0, 0), periodDay(2025, 4, 1), periodDay(2025, 5, 1)},
		{"DecemberToJanuary", time.Time{}, periodTime(2025, 12, 31, 23, 59, 59, 0), periodDay(2025, 12, 1), periodDay(2026, 1, 1)},
		{"NewYear", time.Time{}, periodDay(2026, 1, 1), periodDay(2026, 1, 1), periodDay(2026, 2, 1)},
		{"LeapDay2024", time.Time{}, periodTime(2024, 2, 29, 18, 0, 0, 0), periodDay(2024, 2, 1), periodDay(2024, 3, 1)},
		{"Feb2100NotLeap", time.Time{}, periodTime(2100, 2, 28, 23, 59, 59, 0), periodDay(2100, 2, 1), periodDay(2100, 3, 1)},
		{"Feb2000Leap", time.Time{}, periodTime(2000, 2, 29, 0, 0, 0, 0), periodDay(2000, 2, 1), periodDay(2000, 3, 1)},
	}
}

func anchoredPeriodCases() []periodCase {
	jan31 := periodTime(2025, 1, 31, 10, 0, 0, 0)
	the15th := periodTime(2025, 3, 15, 14, 30, 0, 0)
	return []periodCase{
		{"Jan31AtAnchor", jan31, jan31, jan31, periodTime(2025, 2, 28, 10, 0, 0, 0)},
		{"Jan31InFebruary", jan31, periodTime(2025, 2, 10, 0, 0, 0, 0), jan31, periodTime(2025, 2, 28, 10, 0, 0, 0)},
		{"Jan31ClampToFeb28", jan31, periodTime(2025, 3, 1, 0, 0, 0, 0), periodTime(2025, 2, 28, 10, 0, 0, 0), periodTime(2025, 3, 31, 10, 0, 0, 0)},
		{"Jan31ClampDoesNotStick", jan31, periodTime(2025, 4, 1, 0, 0, 0, 0), periodTime(2025, 3, 31, 10, 0, 0, 0), periodTime(2025, 4, 30, 10, 0, 0, 0)},
		{"Jan31April", jan31, periodTime(2025, 4, 30, 10, 0, 0, 0), periodTime(2025, 4, 30, 10, 0, 0, 0), periodTime(2025, 5, 31, 10, 0, 0, 0)},
		{"Jan31JustBeforeBoundary", jan31, periodTime(2025, 2, 28, 9, 59, 59, 999999999), jan31, periodTime(2025, 2, 28, 10, 0, 0, 0)},
		{"Jan31LeapYear", periodTime(2024, 1, 31, 0, 0, 0, 0), periodTime(2024, 2, 29, 12, 0, 0, 0), periodTime(2024, 2, 29, 0, 0, 0, 0), periodTime(2024, 3, 31, 0, 0, 0, 0)},
		{"Jan31Year2100", periodTime(2100, 1, 31, 0, 0, 0, 0), periodTime(2100, 2, 28, 0, 0, 0, 0), periodTime(2100, 2, 28, 0, 0, 0, 0), periodTime(2100, 3, 31, 0, 0, 0, 0)},
		{"Jan31NextYear", jan31, periodTime(2026, 1, 31, 10, 0, 0, 0), periodTime(2026, 1, 31, 10, 0, 0, 0), periodTime(2026, 2, 28, 10, 0, 0, 0)},
		{"The15thBeforeTimeOfDay", the15th, periodTime(2025, 5, 15, 14, 29, 59, 0), periodTime(2025, 4, 15, 14, 30, 0, 0), periodTime(2025, 5, 15, 14, 30, 0, 0)},
		{"The15thAtTimeOfDay", the15th, periodTime(2025, 5, 15, 14, 30, 0, 0), periodTime(2025, 5, 15, 14, 30, 0, 0), periodTime(2025, 6, 15, 14, 30, 0, 0)},
		{"The15thYearEnd", the15th, periodTime(2025, 12, 31, 0, 0, 0, 0), periodTime(2025, 12, 15, 14, 30, 0, 0), periodTime(2026, 1, 15, 14, 30, 0, 0)},
		{"The29thFebruaryCommonYear", periodTime(2025, 1, 29, 0, 0, 0, 0), periodTime(2025, 3, 1, 0, 0, 0, 0), periodTime(2025, 2, 28, 0, 0, 0, 0), periodTime(2025, 3, 29, 0, 0, 0, 0)},
		{"The29thFebruaryLeapYear", periodTime(2024, 1, 29, 0, 0, 0, 0), periodTime(2024, 3, 1, 0, 0, 0, 0), periodTime(2024, 2, 29, 0, 0, 0, 0), periodTime(2024, 3, 29, 0, 0, 0, 0)},
		{"The30th", periodTime(2025, 1, 30, 6, 0, 0, 0), periodTime(2025, 3, 15, 0, 0, 0, 0), periodTime(2025, 2, 28, 6, 0, 0, 0), periodTime(2025, 3, 30, 6, 0, 0, 0)},
		{"The31stInto30DayMonth", periodTime(2025, 3, 31, 0, 0, 0, 0), periodTime(2025, 6, 30, 0, 0, 0, 0), periodTime(2025, 6, 30, 0, 0, 0, 0), periodTime(2025, 7, 31, 0, 0, 0, 0)},
		{"LeapDayAnchor", periodTime(2024, 2, 29, 0, 0, 0, 0), periodTime(2025, 3, 1, 0, 0, 0, 0), periodTime(2025, 2, 28, 0, 0, 0, 0), periodTime(2025, 3, 29, 0, 0, 0, 0)},
		{"BeforeAnchor", jan31, periodTime(2025, 1, 15, 0, 0, 0, 0), periodTime(2024, 12, 31, 10, 0, 0, 0), jan31},
		{"BeforeAnchorClamped", jan31, periodTime(2024, 11, 30, 12, 0, 0, 0), periodTime(2024, 11, 30, 10, 0, 0, 0), periodTime(2024, 12, 31, 10, 0, 0, 0)},
		{"JustBeforeAnchor", the15th, periodTime(2025, 3, 15, 14, 29, 59, 999999999), periodTime(2025, 2, 15, 14, 30, 0, 0), the15th},
		{"YearsBeforeAnchor", the15th, periodTime(2020, 2, 1, 0, 0, 0, 0), periodTime(2020, 1, 15, 14, 30, 0, 0), periodTime(2020, 2, 15, 14, 30, 0, 0)},
		// The anchor is an instant: 20:00 in New York on Jan 31 is Feb 1 in UTC.
		{"AnchorInOtherZone", time.Date(2025, 1, 31, 20, 0, 0, 0, periodZone("America/New_York")), periodTime(2025, 3, 5, 0, 0, 0, 0), periodTime(2025, 3, 1, 1, 0, 0, 0), periodTime(2025, 4, 1, 1, 0, 0, 0)},
	}
}

func TestPeriodAt(t *testing.T) {
	for _, tt := range append(calendarPeriodCases(), anchoredPeriodCases()...) {
		t.Run(tt.name, func(t *testing.T) {
			checkPeriodAt(t, tt, tt.anchor, tt.t)
		})
	}
}

// TestPeriodAt_LocalZone runs every case with time.Local and the inputs in
// zones far from UTC (Chatham is +12:45/+13:45), asserting identical
// results. It changes time.Local, so it must never run in parallel.
func TestPeriodAt_LocalZone(t *testing.T) {
	saved := time.Local
	t.Cleanup(func() { time.Local = saved })
	cases := append(calendarPeriodCases(), anchoredPeriodCases()...)
	for _, zone := range []string{"America/New_York", "Pacific/Chatham"} {
		loc := periodZone(zone)
		time.Local = loc
		for _, tt := range cases {
			t.Run(zone+"/"+tt.name, func(t *testing.T) {
				anchor := tt.anchor
				if !anchor.IsZero() {
					anchor = anchor.In(loc)
				}
				checkPeriodAt(t, tt, anchor, tt.t.In(loc))
			})
		}
	}
}

func checkPeriodAt(t *testing.T, tt periodCase, anchor, at time.Time) {
	t.Helper()
	p := meter.PeriodAt(anchor, at)
	if !p.Start.Equal(tt.start) || !p.End.Equal(tt.end) {
		t.Fatalf("PeriodAt(%v, %v) = [%v, %v), want [%v, %v)", anchor, at, p.Start, p.End, tt.start, tt.end)
	}
	if p.Start.Location() != time.UTC || p.End.Location() != time.UTC {
		t.Fatalf("period not in UTC: [%v, %v)", p.Start, p.End)
	}
	if !p.Contains(at) {
		t.Fatalf("period [%v, %v) does not contain %v", p.Start, p.End, at)
	}
}

func TestPeriod_Contains(t *testing.T) {
	p := meter.Period{Start: periodDay(2025, 1, 1), End: periodDay(2025, 2, 1)}
	tests := []struct {
		name string
		t    time.Time
		want bool
	}{
		{"Start", periodDay(2025, 1, 1), true},
		{"Inside", periodTime(2025, 1, 31, 23, 59, 59, 999999999), true},
		{"End", periodDay(2025, 2, 1), false},
		{"Before", periodTime(2024, 12, 31, 23, 59, 59, 999999999), false},
		{"OtherZone", periodDay(2025, 2, 1).In(time.FixedZone("X", -5*3600)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Contains(tt.t); got != tt.want {
				t.Fatalf("Contains(%v) = %v, want %v", tt.t, got, tt.want)
			}
		})
	}
}

func TestDayOf(t *testing.T) {
	ny := periodZone("America/New_York")
	tests := []struct {
		name string
		t    time.Time
		want time.Time
	}{
		{"Midnight", periodDay(2025, 3, 9), periodDay(2025, 3, 9)},
		{"LastNano", periodTime(2025, 3, 9, 23, 59, 59, 999999999), periodDay(2025, 3, 9)},
		{"OtherZoneIsUTCDay", time.Date(2025, 3, 9, 21, 0, 0, 0, ny), periodDay(2025, 3, 10)},
		{"LeapDay", periodTime(2024, 2, 29, 12, 0, 0, 0), periodDay(2024, 2, 29)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := meter.DayOf(tt.t)
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Fatalf("DayOf(%v) = %v, want %v", tt.t, got, tt.want)
			}
		})
	}
}

// TestPeriodAt_Consecutive walks anchored periods for years: each period
// must start where the previous ended, with no gap and no overlap.
func TestPeriodAt_Consecutive(t *testing.T) {
	anchors := []time.Time{{}, periodDay(2024, 1, 31), periodTime(2023, 8, 30, 23, 59, 59, 0), periodDay(2024, 2, 29)}
	for _, anchor := range anchors {
		t.Run(anchor.Format("2006-01-02"), func(t *testing.T) {
			p := meter.PeriodAt(anchor, periodDay(2022, 1, 1))
			for range 120 {
				next := meter.PeriodAt(anchor, p.End)
				if !next.Start.Equal(p.End) || !next.End.After(next.Start) {
					t.Fatalf("after [%v, %v) came [%v, %v)", p.Start, p.End, next.Start, next.End)
				}
				if prev := meter.PeriodAt(anchor, p.End.Add(-time.Nanosecond)); !prev.Start.Equal(p.Start) || !prev.End.Equal(p.End) {
					t.Fatalf("PeriodAt(end-1ns) = %v, want %v", prev, p)
				}
				p = next
			}
		})
	}
}

func periodZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}
