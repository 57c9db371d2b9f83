package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// pruneNow is the clock reading of the prune tests; with the default 35
// days of retention the cutoff is 2026-02-03 00:00 UTC.
var (
	pruneNow    = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	pruneCutoff = time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)
)

func mustOpenPruneLedger(tb testing.TB) *ledger.Ledger {
	tb.Helper()
	l, err := ledger.Open(filepath.Join(tb.TempDir(), "meter.db"), ledger.Options{NodeID: "p1", QueueSize: 1 << 17})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func pruneEvent(account string, at time.Time, id string) *meter.Event {
	return &meter.Event{Time: at, PeriodStart: meter.PeriodAt(time.Time{}, at).Start, AccountID: account,
		Endpoint: "/v1/things/{id}", Method: "GET", Status: 200, LatencyMicros: 1000,
		Decision: meter.Allowed, IdempotencyKey: id}
}

// mustAppendAll queues the events and waits for the commit of the last:
// the writer commits in queue order, so all of them are then durable.
func mustAppendAll(tb testing.TB, l *ledger.Ledger, evs []*meter.Event) {
	tb.Helper()
	for i, ev := range evs {
		var err error
		for try := 0; ; try++ {
			err = l.Append(context.Background(), ev, i == len(evs)-1)
			if !errors.Is(err, meter.ErrOverloaded) || try == 1000 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err != nil {
			tb.Fatalf("append event %d: %v", i, err)
		}
	}
}

// dailyEvents returns three events a day, at 01:00, 12:00 and 23:59:59.999,
// from `days` days before pruneNow to pruneNow's day; the midday one of
// each day carries an idempotency id.
func dailyEvents(account string, days int) []*meter.Event {
	var evs []*meter.Event
	first := meter.DayOf(pruneNow).AddDate(0, 0, -days)
	for d := 0; d <= days; d++ {
		day := first.AddDate(0, 0, d)
		evs = append(evs,
			pruneEvent(account, day.Add(time.Hour), ""),
			pruneEvent(account, day.Add(12*time.Hour), "call-"+day.Format(time.DateOnly)),
			pruneEvent(account, day.Add(24*time.Hour-time.Millisecond), ""))
	}
	return evs
}

func TestLedger_Prune(t *testing.T) {
	l := mustOpenPruneLedger(t)
	ctx := context.Background()
	mustAppendAll(t, l, dailyEvents("acct", 45)) // Jan 24 .. Mar 10: 46 days, 138 events
	from, to := pruneNow.AddDate(0, 0, -50), pruneNow
	daysBefore := mustDailyUsage(t, l, "acct", from, to)
	totalBefore := mustDailyUsage(t, l, "", from, to)
	countersBefore, err := l.Counters(ctx, "acct")
	if err != nil {
		t.Fatal(err)
	}
	endpointsBefore, err := l.EndpointUsage(ctx, "acct", from, to)
	if err != nil {
		t.Fatal(err)
	}

	rep, err := l.Prune(ctx, ledger.PruneOptions{Now: func() time.Time { return pruneNow }})
	if err != nil {
		t.Fatal(err)
	}
	// Jan 24 .. Feb 2 are before the cutoff: 10 days of 3 events, one of
	// them with an idempotency id.
	if !rep.Cutoff.Equal(pruneCutoff) || rep.Events != 30 || rep.Idempotency != 10 || rep.HeldBy != "" {
		t.Fatalf("report %+v, want cutoff %v, 30 events, 10 idempotency records", rep, pruneCutoff)
	}
	if first, _ := l.FirstSeq(ctx); first != 31 {
		t.Errorf("FirstSeq = %d, want 31", first)
	}
	kept, err := l.EventsAfter(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 108 || kept[0].Seq != 31 || !kept[0].Time.Equal(pruneCutoff.Add(time.Hour)) {
		t.Fatalf("kept %d events starting with %+v", len(kept), kept[0])
	}
	t.Run("AggregatesKept", func(t *testing.T) {
		if got := mustDailyUsage(t, l, "acct", from, to); !reflect.DeepEqual(got, daysBefore) {
			t.Error("account daily usage changed")
		}
		if got := mustDailyUsage(t, l, "", from, to); !reflect.DeepEqual(got, totalBefore) {
			t.Error("daily totals changed")
		}
		if got, _ := l.Counters(ctx, "acct"); !reflect.DeepEqual(got, countersBefore) {
			t.Errorf("counters %+v, want %+v", got, countersBefore)
		}
		if got, _ := l.EndpointUsage(ctx, "acct", from, to); !reflect.DeepEqual(got, endpointsBefore) {
			t.Errorf("endpoint usage %+v, want %+v", got, endpointsBefore)
		}
	})
	t.Run("Idempotency", func(t *testing.T) {
		for day, want := range map[string]bool{"2026-01-24": false, "2026-02-02": false,
			"2026-02-03": true, "2026-03-10": true} {
			if _, found, err := l.Idempotency(ctx, "acct", "call-"+day); err != nil || found != want {
				t.Errorf("idempotency record of %s: found %v, %v; want found %v", day, found, err, want)
			}
		}
	})
	t.Run("Again", func(t *testing.T) {
		rep, err := l.Prune(ctx, ledger.PruneOptions{Now: func() time.Time { return pruneNow }})
		if err != nil || rep.Events != 0 || rep.Idempotency != 0 {
			t.Errorf("second prune: %+v, %v", rep, err)
		}
	})
	t.Run("NextDay", func(t *testing.T) {
		next := func() time.Time { return pruneNow.Add(24 * time.Hour) }
		rep, err := l.Prune(ctx, ledger.PruneOptions{Now: next})
		if err != nil || rep.Events != 3 || rep.Idempotency != 1 {
			t.Errorf("prune a day later: %+v, %v; want the 3 events of Feb 3", rep, err)
		}
	})
}

func mustDailyUsage(tb testing.TB, l *ledger.Ledger, account string, from, to time.Time) []meter.DailyUsage {
	tb.Helper()
	days, err := l.DailyUsage(context.Background(), account, from, to)
	if err != nil {
		tb.Fatal(err)
	}
	return days
}

func TestLedger_Prune_Cursors(t *testing.T) {
	tests := []struct {
		name    string
		cursors map[string]uint64 // stored cursor values
		names   []string          // the cursors Prune must respect
		events  int
		heldBy  string
	}{
		{"NoExport", map[string]uint64{"postgres": 5}, nil, 30, ""},
		{"Unset", nil, []string{"postgres"}, 0, "postgres"},
		{"Behind", map[string]uint64{"postgres": 12}, []string{"postgres"}, 12, "postgres"},
		{"Minimum", map[string]uint64{"postgres": 20, "stripe": 8}, []string{"postgres", "stripe"}, 8, "stripe"},
		{"OneUnset", map[string]uint64{"postgres": 20}, []string{"postgres", "stripe"}, 0, "stripe"},
		{"Ahead", map[string]uint64{"postgres": 100}, []string{"postgres"}, 30, ""},
		{"AtCutoff", map[string]uint64{"postgres": 30}, []string{"postgres"}, 30, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustOpenPruneLedger(t)
			ctx := context.Background()
			mustAppendAll(t, l, dailyEvents("acct", 45))
			for name, seq := range tt.cursors {
				if err := l.SetCursor(ctx, name, seq); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := l.Prune(ctx, ledger.PruneOptions{Cursors: tt.names, Now: func() time.Time { return pruneNow }})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Events != tt.events || rep.HeldBy != tt.heldBy {
				t.Errorf("pruned %d events, held by %q; want %d, %q", rep.Events, rep.HeldBy, tt.events, tt.heldBy)
			}
			// Idempotency records do not wait for exports.
			if rep.Idempotency != 10 {
				t.Errorf("pruned %d idempotency records, want 10", rep.Idempotency)
			}
			if first, _ := l.FirstSeq(ctx); first != uint64(tt.events)+1 {
				t.Errorf("FirstSeq = %d, want %d", first, tt.events+1)
			}
		})
	}
}

// TestLedger_Prune_Contiguous: an event committed late with an old time
// waits for the events committed before it, so the log has no holes.
func TestLedger_Prune_Contiguous(t *testing.T) {
	l := mustOpenPruneLedger(t)
	ctx := context.Background()
	old := pruneCutoff.Add(-time.Hour)
	mustAppendAll(t, l, []*meter.Event{pruneEvent("a", old, ""), pruneEvent("a", old, ""),
		pruneEvent("a", pruneCutoff, ""), pruneEvent("a", old.AddDate(0, 0, -3), ""), pruneEvent("a", pruneNow, "")})
	rep, err := l.Prune(ctx, ledger.PruneOptions{Now: func() time.Time { return pruneNow }})
	if err != nil || rep.Events != 2 {
		t.Fatalf("prune: %+v, %v; want the first 2 events", rep, err)
	}
	evs, err := l.EventsAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, ev := range evs {
		seqs = append(seqs, ev.Seq)
	}
	if fmt.Sprint(seqs) != "[3 4 5]" {
		t.Errorf("kept %v, want [3 4 5]", seqs)
	}
}

// TestLedger_Prune_Batches prunes in many small transactions while calls
// keep being committed, and loses none of them.
func TestLedger_Prune_Batches(t *testing.T) {
	l := mustOpenPruneLedger(t)
	ctx := context.Background()
	const old = 2500
	evs := make([]*meter.Event, 0, old+1)
	for i := range old {
		evs = append(evs, pruneEvent(fmt.Sprintf("acct-%d", i%7), pruneCutoff.Add(-time.Duration(old-i)*time.Second),
			fmt.Sprintf("id-%d", i)))
	}
	mustAppendAll(t, l, append(evs, pruneEvent("acct-0", pruneNow, "")))

	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				ev := pruneEvent(fmt.Sprintf("live-%d", w), pruneNow, "")
				if err := l.Append(ctx, ev, true); err != nil {
					t.Errorf("append during prune %d: %v", i, err)
					return
				}
			}
		})
	}
	rep, err := l.Prune(ctx, ledger.PruneOptions{BatchSize: 100, Now: func() time.Time { return pruneNow }})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != old || rep.Idempotency != old || rep.Transactions < 2*old/100 {
		t.Errorf("report %+v: want %d events and idempotency records in at least %d transactions", rep, old, 2*old/100)
	}
	kept, err := l.EventsAfter(ctx, 0, 10*old)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1+writers*each {
		t.Errorf("kept %d events, want %d", len(kept), 1+writers*each)
	}
	for w := range writers {
		c, err := l.Counter(ctx, fmt.Sprintf("live-%d", w), meter.PeriodAt(time.Time{}, pruneNow).Start)
		if err != nil || c.Calls != each {
			t.Errorf("live-%d counter %+v, %v; want %d calls", w, c, err, each)
		}
	}
}

// TestLedger_Prune_IdempotencyScan resumes a walk of more idempotency
// records than one transaction may look at.
func TestLedger_Prune_IdempotencyScan(t *testing.T) {
	l := mustOpenPruneLedger(t)
	ctx := context.Background()
	const n = 12000
	evs := make([]*meter.Event, 0, n)
	for i := range n {
		at := pruneNow
		if i%2 == 0 { // old and young records alternate in key order
			at = pruneCutoff.Add(-time.Minute)
		}
		evs = append(evs, pruneEvent("acct", at, fmt.Sprintf("call-%05d", i)))
	}
	mustAppendAll(t, l, evs)
	rep, err := l.Prune(ctx, ledger.PruneOptions{BatchSize: 10000, Now: func() time.Time { return pruneNow }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Idempotency != n/2 || rep.Events != 1 {
		t.Errorf("report %+v, want %d idempotency records and the one old event before the first young one", rep, n/2)
	}
	for _, i := range []int{0, 1, 9998, 9999, 10000, 10001, 11998, 11999} {
		_, found, err := l.Idempotency(ctx, "acct", fmt.Sprintf("call-%05d", i))
		if err != nil || found != (i%2 == 1) {
			t.Errorf("call-%05d: found %v, %v", i, found, err)
		}
	}
}

func TestLedger_Prune_Defaults(t *testing.T) {
	l := mustOpenPruneLedger(t)
	now := time.Now().UTC()
	mustAppendAll(t, l, []*meter.Event{pruneEvent("a", now.AddDate(0, 0, -40), "old"),
		pruneEvent("a", now.AddDate(0, 0, -30), "young")})
	rep, err := l.Prune(context.Background(), ledger.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := meter.DayOf(now.Add(-ledger.DefaultRetention)); !rep.Cutoff.Equal(want) && !rep.Cutoff.Equal(want.AddDate(0, 0, 1)) {
		t.Errorf("cutoff %v, want %v", rep.Cutoff, want)
	}
	if rep.Events != 1 || rep.Idempotency != 1 {
		t.Errorf("report %+v, want 1 event and 1 idempotency record", rep)
	}
}

func TestLedger_Prune_Errors(t *testing.T) {
	t.Run("ErrClosed", func(t *testing.T) {
		l := mustOpenPruneLedger(t)
		l.Close()
		if _, err := l.Prune(context.Background(), ledger.PruneOptions{}); !errors.Is(err, meter.ErrClosed) {
			t.Errorf("err = %v, want ErrClosed", err)
		}
	})
	t.Run("Canceled", func(t *testing.T) {
		l := mustOpenPruneLedger(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := l.Prune(ctx, ledger.PruneOptions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

// syncBuffer is a log destination shared with the pruner goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLedger_RunPruner(t *testing.T) {
	for _, stop := range []string{"Cancel", "Close"} {
		t.Run(stop, func(t *testing.T) {
			l := mustOpenPruneLedger(t)
			mustAppendAll(t, l, dailyEvents("acct", 40))
			var logs syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				l.RunPruner(ctx, 5*time.Millisecond, ledger.PruneOptions{Now: func() time.Time { return pruneNow }},
					slog.New(slog.NewTextHandler(&logs, nil)))
			}()
			waitFor(t, func() bool { first, _ := l.FirstSeq(context.Background()); return first == 16 })
			waitFor(t, func() bool { return strings.Contains(logs.String(), "pruned ledger") })
			if stop == "Cancel" {
				cancel()
			} else {
				l.Close()
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("RunPruner did not return")
			}
			if n := strings.Count(logs.String(), "pruned ledger"); n != 1 {
				t.Errorf("logged %d prunes with deletions, want 1:\n%s", n, logs.String())
			}
		})
	}
}

func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
