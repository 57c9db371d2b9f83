package meter_test

import (
	"testing"

	"github.com/meterd/meterd/meter"
)

func TestCrossings(t *testing.T) {
	free := meter.Plan{Name: "free", Limit: 1000, Hard: true}
	pro := meter.Plan{Name: "pro", Limit: 100, OverageMicros: 100000} // 10 cents a call
	def := meter.DefaultThresholds()
	spend := meter.Thresholds{SpendCents: []int64{50}}
	type want struct {
		typ       meter.NoticeType
		threshold int64
	}
	cases := []struct {
		name          string
		plan          meter.Plan
		th            meter.Thresholds
		before, after meter.Counts
		want          []want
	}{
		{"below", free, def, meter.Counts{Calls: 10}, meter.Counts{Calls: 11}, nil},
		{"80", free, def, meter.Counts{Calls: 799}, meter.Counts{Calls: 800}, []want{{meter.NoticeThresholdReached, 80}}},
		{"past80", free, def, meter.Counts{Calls: 800}, meter.Counts{Calls: 801}, nil},
		{"100", free, def, meter.Counts{Calls: 999}, meter.Counts{Calls: 1000}, []want{{meter.NoticeThresholdReached, 100}}},
		{"firstDenial", free, def, meter.Counts{Calls: 1000}, meter.Counts{Calls: 1000, Denied: 1}, []want{{meter.NoticeLimitReached, 0}}},
		{"secondDenial", free, def, meter.Counts{Calls: 1000, Denied: 1}, meter.Counts{Calls: 1000, Denied: 2}, nil},
		{"both at once", free, def, meter.Counts{Calls: 0}, meter.Counts{Calls: 1000}, []want{{meter.NoticeThresholdReached, 80}, {meter.NoticeThresholdReached, 100}}},
		{"overage", pro, def, meter.Counts{Calls: 100}, meter.Counts{Calls: 101, Overage: 1}, []want{{meter.NoticeOverageStarted, 0}}},
		{"spend", pro, spend, meter.Counts{Calls: 104, Overage: 4}, meter.Counts{Calls: 105, Overage: 5}, []want{{meter.NoticeThresholdReached, 50}}},
		{"spend past", pro, spend, meter.Counts{Calls: 105, Overage: 5}, meter.Counts{Calls: 106, Overage: 6}, nil},
		{"unlimited", meter.Plan{Name: "enterprise"}, def, meter.Counts{}, meter.Counts{Calls: 1}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := meter.Crossings(c.before, c.after, c.plan, c.th)
			if len(got) != len(c.want) {
				t.Fatalf("got %d notices %+v, want %+v", len(got), got, c.want)
			}
			for i, w := range c.want {
				if got[i].Type != w.typ || got[i].Threshold != w.threshold {
					t.Errorf("notice %d = %s %d, want %s %d", i, got[i].Type, got[i].Threshold, w.typ, w.threshold)
				}
			}
		})
	}
}
