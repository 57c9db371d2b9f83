package meter_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// march10 is the frozen clock of these tests: the open period is March 2026.
var march10 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// mustOpenPlannedMeter is mustOpenMeter with plans from a plans file text.
func mustOpenPlannedMeter(tb testing.TB, clk *clock, plans string) (*meter.Meter, *ledger.Ledger) {
	tb.Helper()
	p, err := meter.ParsePlans([]byte(plans))
	if err != nil {
		tb.Fatal(err)
	}
	l, err := ledger.Open(filepath.Join(tb.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	m, err := meter.New(context.Background(), meter.Config{Store: l, Plans: p, Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	return m, l
}

func batchCall(account, id string) meter.BatchCall {
	return meter.BatchCall{Call: meter.Call{AccountID: account, Endpoint: "/v1/orders/42", Method: "post", ID: id}}
}

func mustRecord(tb testing.TB, m *meter.Meter, calls []meter.BatchCall) []meter.BatchOutcome {
	tb.Helper()
	out, err := m.RecordBatch(context.Background(), calls)
	if err != nil {
		tb.Fatalf("record batch: %v", err)
	}
	if len(out) != len(calls) {
		tb.Fatalf("%d outcomes for %d calls", len(out), len(calls))
	}
	return out
}

func mustQuota(tb testing.TB, m *meter.Meter, account string) meter.Quota {
	tb.Helper()
	q, err := m.Quota(account)
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

func TestMeter_RecordBatch_Rejections(t *testing.T) {
	clk := &clock{t: march10}
	m, _ := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), clk)
	mustAccount(t, m, "acct", "pro")
	at := func(ts time.Time) meter.BatchCall { c := batchCall("acct", "id-"+ts.String()); c.Time = ts; return c }
	tests := []struct {
		name  string
		call  meter.BatchCall
		field string // ValidationError field, "" for a sentinel
		err   error
	}{
		{"MissingID", batchCall("acct", ""), "id", nil},
		{"UnknownAccount", batchCall("nobody", "x1"), "", meter.ErrAccountNotFound},
		{"UnknownKey", meter.BatchCall{Call: meter.Call{APIKey: "mk_not-a-real-key", Endpoint: "/x", Method: "GET", ID: "x2"}}, "", meter.ErrUnknownKey},
		{"BadMethod", meter.BatchCall{Call: meter.Call{AccountID: "acct", Endpoint: "/x", Method: "GE T", ID: "x3"}}, "method", nil},
		{"NoEndpoint", meter.BatchCall{Call: meter.Call{AccountID: "acct", Method: "GET", ID: "x4"}}, "endpoint", nil},
		{"BeforePeriod", at(time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC)), "timestamp", nil},
		{"AtNextPeriod", at(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)), "timestamp", nil},
		{"Future", at(march10.Add(meter.MaxEventSkew + time.Second)), "timestamp", nil},
	}
	calls := []meter.BatchCall{at(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))}
	for _, tt := range tests {
		calls = append(calls, tt.call)
	}
	out := mustRecord(t, m, calls)
	if !out[0].Accepted() {
		t.Fatalf("event at the period's first instant: %+v, want accepted", out[0])
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := out[i+1]
			if o.Accepted() || o.Duplicate || o.Err == nil {
				t.Fatalf("outcome %+v, want rejected", o)
			}
			var ve *meter.ValidationError
			switch {
			case tt.err != nil && !errors.Is(o.Err, tt.err):
				t.Errorf("error %v, want %v", o.Err, tt.err)
			case tt.err == nil && (!errors.As(o.Err, &ve) || ve.Field != tt.field):
				t.Errorf("error %v, want a validation error on %q", o.Err, tt.field)
			}
		})
	}
	if q := mustQuota(t, m, "acct"); q.Calls != 1 {
		t.Errorf("calls %d, want only the valid event counted", q.Calls)
	}
}

func TestMeter_RecordBatch_Dedup(t *testing.T) {
	clk := &clock{t: march10}
	m, l := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), clk)
	mustAccount(t, m, "acct", "pro")
	ctx := context.Background()
	tracked, err := m.Track(ctx, meter.Call{AccountID: "acct", Endpoint: "/x", Method: "GET", ID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	calls := []meter.BatchCall{batchCall("acct", "a"), batchCall("acct", "b"), batchCall("acct", "a"), batchCall("acct", "t1")}
	out := mustRecord(t, m, calls)
	if !out[0].Accepted() || !out[1].Accepted() || out[0].EventID == "" || out[0].EventID == out[1].EventID {
		t.Fatalf("first occurrences: %+v %+v, want accepted with distinct event ids", out[0], out[1])
	}
	if !out[2].Duplicate || out[2].EventID != out[0].EventID {
		t.Errorf("in-batch repeat: %+v, want duplicate of %s", out[2], out[0].EventID)
	}
	if !out[3].Duplicate || out[3].EventID != tracked.EventID {
		t.Errorf("id tracked before: %+v, want duplicate of %s", out[3], tracked.EventID)
	}
	before := mustQuota(t, m, "acct").Calls
	seq, _ := l.LastSeq(ctx)

	again := mustRecord(t, m, calls)
	for i, o := range again {
		if !o.Duplicate || o.Err != nil {
			t.Errorf("resent event %d: %+v, want duplicate", i, o)
		}
	}
	if after := mustQuota(t, m, "acct").Calls; after != before || before != 3 {
		t.Errorf("calls %d then %d after the resend, want 3 both times", before, after)
	}
	if seq2, _ := l.LastSeq(ctx); seq2 != seq {
		t.Errorf("resend appended events: last seq %d -> %d", seq, seq2)
	}
	res, err := m.Track(ctx, meter.Call{AccountID: "acct", Endpoint: "/x", Method: "GET", ID: "b"})
	if err != nil || !res.Duplicate || res.EventID != out[1].EventID {
		t.Errorf("Track of a batch id: %+v %v, want duplicate of %s", res, err, out[1].EventID)
	}
}

func TestMeter_RecordBatch_NeverDeniesAndStampsTime(t *testing.T) {
	clk := &clock{t: march10}
	m, l := mustOpenPlannedMeter(t, clk, `plans:
  tiny: {limit: 2, hard: true}
  soft: {limit: 2, overage_micros: 1000}
`)
	mustAccount(t, m, "hard", "tiny")
	mustAccount(t, m, "soft", "soft")
	when := time.Date(2026, 3, 2, 8, 30, 0, 0, time.UTC)
	var calls []meter.BatchCall
	for i := range 3 {
		for _, a := range []string{"hard", "soft"} {
			c := batchCall(a, fmt.Sprint("e", i))
			c.Time = when.Add(time.Duration(i) * time.Minute)
			calls = append(calls, c)
		}
	}
	for i, o := range mustRecord(t, m, calls) {
		if !o.Accepted() {
			t.Fatalf("event %d: %+v, want accepted: reported calls are never denied", i, o)
		}
	}
	for _, tc := range []struct {
		account        string
		calls, overage int64
	}{{"hard", 3, 0}, {"soft", 3, 1}} {
		q := mustQuota(t, m, tc.account)
		if q.Calls != tc.calls || q.Overage != tc.overage || q.Denied != 0 {
			t.Errorf("%s: calls %d overage %d denied %d, want %d/%d/0", tc.account, q.Calls, q.Overage, q.Denied, tc.calls, tc.overage)
		}
		if want := when.Add(2 * time.Minute); !q.LastCallAt.Equal(want) {
			t.Errorf("%s: last call %v, want the latest event time %v", tc.account, q.LastCallAt, want)
		}
	}
	if res, _ := track(m, "hard"); res.Allowed {
		t.Errorf("Track after the batch filled the hard limit: allowed")
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs, err := l.EventsAfter(context.Background(), 0, 10)
	if err != nil || len(evs) != 7 {
		t.Fatalf("events: %d %v, want 7", len(evs), err)
	}
	for _, ev := range evs[:6] {
		if ev.Time.Before(when) || ev.Time.After(when.Add(2*time.Minute)) || ev.Endpoint != "/v1/orders/{id}" ||
			ev.Method != "POST" || ev.Decision != meter.Allowed || ev.IdempotencyKey == "" {
			t.Errorf("event %+v: want stamped at its own time, folded, allowed, with its id", ev)
		}
		if wantOver := ev.AccountID == "soft" && ev.IdempotencyKey == "e2"; ev.Overage != wantOver {
			t.Errorf("event %s/%s overage %v, want %v", ev.AccountID, ev.IdempotencyKey, ev.Overage, wantOver)
		}
	}
	days, err := l.DailyUsage(context.Background(), "soft", when, march10)
	if err != nil || days[0].Calls != 3 || days[len(days)-1].Calls != 0 {
		t.Errorf("daily usage %+v %v: want the 3 calls on %s, none today", days, err, when.Format(time.DateOnly))
	}
}

// Batches holding each other's ids, and Track calls on the same ids, all
// at once: every id counts once and nothing deadlocks.
func TestMeter_RecordBatch_ConcurrentSameIDs(t *testing.T) {
	clk := &clock{t: march10}
	m, _ := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), clk)
	mustAccount(t, m, "acct", "enterprise")
	const n = 200
	forward := make([]meter.BatchCall, n)
	backward := make([]meter.BatchCall, n)
	for i := range n {
		forward[i] = batchCall("acct", fmt.Sprint("id", i))
		backward[n-1-i] = forward[i]
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	accepted := make([]int, 6)
	for w := range 6 {
		wg.Go(func() {
			calls := forward
			if w%2 == 1 {
				calls = backward
			}
			out, err := m.RecordBatch(context.Background(), calls)
			if err != nil {
				t.Error(err)
				return
			}
			for _, o := range out {
				if o.Accepted() {
					accepted[w]++
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; i < n; i += 7 {
			if _, err := m.Track(context.Background(), meter.Call{AccountID: "acct", Endpoint: "/x", Method: "GET", ID: fmt.Sprint("id", i)}); err != nil {
				t.Error(err)
			}
		}
	})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("concurrent batches deadlocked")
	}
	total := 0
	for _, a := range accepted {
		total += a
	}
	q := mustQuota(t, m, "acct")
	if q.Calls != n || total > n {
		t.Errorf("calls %d (batches accepted %d), want each of the %d ids counted once", q.Calls, total, n)
	}
}

func TestMeter_RecordBatch_StoreFailure(t *testing.T) {
	clk := &clock{t: march10}
	m, l := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), clk)
	mustAccount(t, m, "acct", "pro")
	mustRecord(t, m, []meter.BatchCall{batchCall("acct", "ok")})
	l.Close()
	_, err := m.RecordBatch(context.Background(), []meter.BatchCall{batchCall("acct", "x"), batchCall("acct", "y")})
	// The ledger's read path reports bbolt's own "database not open", not
	// ErrClosed; any error will do here.
	if err == nil {
		t.Fatal("record batch on a closed ledger succeeded")
	}
	if q := mustQuota(t, m, "acct"); q.Calls != 1 {
		t.Errorf("calls %d, want 1: a batch the ledger refused counts nothing", q.Calls)
	}
}

func TestMeter_Reserve(t *testing.T) {
	ctx := context.Background()
	t.Run("FinishRecordsStatusAndLatency", func(t *testing.T) {
		clk := &clock{t: march10}
		m, l := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), clk)
		mustAccount(t, m, "acct", "free")
		r, err := m.Reserve(ctx, meter.Call{AccountID: "acct", Endpoint: "/v1/users/123", Method: "get"})
		if err != nil {
			t.Fatal(err)
		}
		res := r.Result()
		if !res.Allowed || res.Remaining != 999 || res.Calls != 1 || !r.Period().Start.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("reservation %+v in %+v, want allowed, 999 left, March", res, r.Period())
		}
		if seq, _ := l.LastSeq(ctx); seq != 0 {
			t.Fatalf("reserve recorded an event before the answer: seq %d", seq)
		}
		if err := r.Finish(ctx, 201, 1500*time.Microsecond); err != nil {
			t.Fatal(err)
		}
		if err := r.Finish(ctx, 500, time.Second); err != nil {
			t.Fatal(err)
		}
		evs, _ := l.EventsAfter(ctx, 0, 10)
		if len(evs) != 1 || evs[0].Status != 201 || evs[0].LatencyMicros != 1500 || evs[0].Endpoint != "/v1/users/{id}" || evs[0].Method != "GET" {
			t.Fatalf("events %+v, want one GET /v1/users/{id} 201 in 1500us", evs)
		}
	})
	t.Run("DeniedIsRecordedAtOnce", func(t *testing.T) {
		clk := &clock{t: march10}
		m, l := mustOpenPlannedMeter(t, clk, "plans:\n  tiny: {limit: 1, hard: true}\n")
		mustAccount(t, m, "acct", "tiny")
		first, _ := m.Reserve(ctx, meter.Call{AccountID: "acct", Endpoint: "/x", Method: "GET"})
		r, err := m.Reserve(ctx, meter.Call{AccountID: "acct", Endpoint: "/x", Method: "GET"})
		if err != nil || r.Result().Allowed {
			t.Fatalf("second call on a limit of 1: %+v %v, want denied", r, err)
		}
		_ = r.Finish(ctx, 200, 0) // no effect on a denial
		_ = first.Finish(ctx, 200, 0)
		evs, _ := l.EventsAfter(ctx, 0, 10)
		if len(evs) != 2 || evs[0].Decision != meter.Denied || evs[1].Decision != meter.Allowed {
			t.Fatalf("events %+v, want the denial then the allowed call", evs)
		}
		if q := mustQuota(t, m, "acct"); q.Calls != 1 || q.Denied != 1 {
			t.Errorf("quota %+v, want 1 call and 1 denial", q)
		}
	})
	t.Run("LedgerFailureGivesTheCountBack", func(t *testing.T) {
		clk := &clock{t: march10}
		m, l := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), clk)
		mustAccount(t, m, "acct", "free")
		r, err := m.Reserve(ctx, meter.Call{AccountID: "acct", Endpoint: "/x", Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if err := r.Finish(ctx, 200, 0); !errors.Is(err, meter.ErrClosed) {
			t.Fatalf("finish on a closed ledger: %v, want ErrClosed", err)
		}
		if q := mustQuota(t, m, "acct"); q.Calls != 0 {
			t.Errorf("calls %d, want 0", q.Calls)
		}
	})
	t.Run("NoIdempotencyID", func(t *testing.T) {
		m, _ := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), &clock{t: march10})
		mustAccount(t, m, "acct", "free")
		_, err := m.Reserve(ctx, meter.Call{AccountID: "acct", Endpoint: "/x", Method: "GET", ID: "x"})
		var ve *meter.ValidationError
		if !errors.As(err, &ve) || ve.Field != "id" {
			t.Fatalf("error %v, want a validation error on id", err)
		}
	})
	t.Run("ConcurrentHardLimit", func(t *testing.T) {
		m, _ := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), &clock{t: march10})
		mustAccount(t, m, "acct", "free")
		var mu sync.Mutex
		allowed := 0
		var wg sync.WaitGroup
		for range 300 {
			wg.Go(func() {
				for range 5 {
					r, err := m.Reserve(ctx, meter.Call{AccountID: "acct", Endpoint: "/x", Method: "GET"})
					if err != nil {
						t.Error(err)
						return
					}
					if r.Result().Allowed {
						mu.Lock()
						allowed++
						mu.Unlock()
						_ = r.Finish(ctx, 200, time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		if q := mustQuota(t, m, "acct"); allowed != 1000 || q.Calls != 1000 || q.Denied != 500 {
			t.Errorf("allowed %d, quota %+v: want exactly 1000 allowed and 500 denied", allowed, q)
		}
	})
}
