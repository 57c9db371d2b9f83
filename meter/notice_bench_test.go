package meter

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecideEvent measures the decision as the hot path makes it
// (decideEvent: roll, check and count, endpoint cap, stamping the event)
// over 1,000 Pro accounts, with notices off and on (default thresholds:
// the crossing check runs on every call). Interleave the two:
//
//	go test -c -o /tmp/meter.test ./meter && for i in 1 2 3 4 5 6; do for v in off on; do
//	  /tmp/meter.test -test.run '^$' -test.bench "BenchmarkDecideEvent/$v\$" -test.benchtime 2000000x; done; done
func BenchmarkDecideEvent(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			m := &Meter{accounts: map[string]*accountState{}, now: time.Now, maxEndpoints: 500}
			if on {
				m.SetNotices(&NoticeConfig{Default: DefaultThresholds()}, nil)
			}
			plan, _ := DefaultPlans().Get("pro")
			now := time.Now().UTC()
			states := make([]*accountState, 1000)
			for i := range states {
				a := Account{ID: fmt.Sprintf("acct-%d", i), Plan: "pro"}
				states[i] = &accountState{id: a.ID, acct: a, plan: plan, period: PeriodAt(time.Time{}, now),
					endpoints: map[string]struct{}{"/v1/x": {}}}
			}
			ev := &Event{Endpoint: "/v1/x"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m.decideEvent(states[i%len(states)], ev, now, grant{})
				if ev.Notices != nil && !on {
					b.Fatal("notice while off")
				}
			}
		})
	}
}

// TestDecideEvent_NoAllocs: with notices on, and an account with its own
// thresholds, a call that crosses nothing allocates nothing.
func TestDecideEvent_NoAllocs(t *testing.T) {
	m := &Meter{accounts: map[string]*accountState{}, now: time.Now, maxEndpoints: 500}
	m.SetNotices(&NoticeConfig{Default: DefaultThresholds(),
		Plans:    map[string]Thresholds{"pro": {Percent: []int64{50}}},
		Accounts: map[string]Thresholds{"a": {Percent: []int64{90}, SpendCents: []int64{500}}}}, nil)
	plan, _ := DefaultPlans().Get("pro")
	now := time.Now().UTC()
	st := &accountState{id: "a", acct: Account{ID: "a", Plan: "pro"}, plan: plan, period: PeriodAt(time.Time{}, now),
		endpoints: map[string]struct{}{"/v1/x": {}}}
	ev := &Event{Endpoint: "/v1/x"}
	if n := testing.AllocsPerRun(1000, func() { m.decideEvent(st, ev, now, grant{}) }); n != 0 {
		t.Fatalf("decideEvent allocates %v times per call", n)
	}
}
