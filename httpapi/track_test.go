package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// aprilFirst is the end of the default test clock's period (March 2026).
var aprilFirst = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

// designTrackFields are the track answer's fields named by DESIGN.md.
var designTrackFields = []string{"allowed", "plan", "limit", "remaining", "reset", "overage"}

// trackBody is the body of POST /v1/track.
type trackBody struct {
	APIKey    string   `json:"api_key,omitempty"`
	AccountID string   `json:"account_id,omitempty"`
	Endpoint  string   `json:"endpoint,omitempty"`
	Method    string   `json:"method,omitempty"`
	Status    int      `json:"status,omitempty"`
	LatencyMS *float64 `json:"latency_ms,omitempty"`
	ID        string   `json:"id,omitempty"`
}

// trackRequest is a POST /v1/track of b.
func trackRequest(tb testing.TB, b trackBody) request {
	return request{Method: http.MethodPost, Path: "/v1/track", Body: mustJSON(tb, b)}
}

// Track meters one GET /v1/things call for key.
func (s *TestServer) Track(tb testing.TB, key string) response {
	tb.Helper()
	return s.Do(tb, trackRequest(tb, trackBody{APIKey: key, Endpoint: "/v1/things", Method: "GET"}))
}

// trackResult is the body of a track answer (200 or 429).
type trackResult struct {
	Allowed   bool      `json:"allowed"`
	Duplicate bool      `json:"duplicate"`
	AccountID string    `json:"account_id"`
	Plan      string    `json:"plan"`
	Limit     *int64    `json:"limit"`
	Remaining *int64    `json:"remaining"`
	Reset     int64     `json:"reset"`
	Overage   bool      `json:"overage"`
	EventID   string    `json:"event_id"`
	Error     *apiError `json:"error"`
}

// decodeTrack decodes a track answer, requiring status want.
func decodeTrack(tb testing.TB, resp response, want int) trackResult {
	tb.Helper()
	if resp.Status != want {
		tb.Fatalf("track: status %d, want %d: %s", resp.Status, want, resp.Body)
	}
	var r trackResult
	mustUnmarshal(tb, resp.Body, &r)
	return r
}

func TestTrack_HappyPath(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_happy", "free")

	resp := s.Track(t, key)
	r := decodeTrack(t, resp, http.StatusOK)
	if !r.Allowed || r.Plan != "free" || r.Overage || r.Duplicate {
		t.Errorf("decision %+v, want allowed on free without overage", r)
	}
	if r.Limit == nil || *r.Limit != 1000 || r.Remaining == nil || *r.Remaining != 999 {
		t.Errorf("limit/remaining %v/%v, want 1000/999", r.Limit, r.Remaining)
	}
	if r.Reset != aprilFirst.Unix() {
		t.Errorf("reset %d, want %d (2026-04-01T00:00:00Z)", r.Reset, aprilFirst.Unix())
	}
	if r.AccountID != "acct_happy" || r.EventID != s.Ledger.NodeID()+"-1" {
		t.Errorf("account %q event %q, want acct_happy and %s-1", r.AccountID, r.EventID, s.Ledger.NodeID())
	}
	requireDesignFields(t, resp.Body)
	wantHeaders(t, resp.Header, map[string]string{"X-RateLimit-Limit": "1000",
		"X-RateLimit-Remaining": "999", "X-RateLimit-Reset": strconv.FormatInt(aprilFirst.Unix(), 10),
		"Retry-After": "", "Content-Type": "application/json"})

	// The header path to the key meters the same account.
	resp = s.Do(t, request{Method: http.MethodPost, Path: "/v1/track",
		Body: `{"endpoint":"/v1/things","method":"post"}`, Header: map[string]string{"X-API-Key": key}})
	if r := decodeTrack(t, resp, http.StatusOK); *r.Remaining != 998 || r.AccountID != "acct_happy" {
		t.Errorf("X-API-Key call: %+v, want remaining 998 on acct_happy", r)
	}
	if u := s.MustUsage(t, "acct_happy"); u.APICalls != 2 {
		t.Errorf("api_calls %d, want 2", u.APICalls)
	}
}

// requireDesignFields checks the DESIGN.md fields are present; the answer
// also carries account_id, reset_at and event_id (and duplicate on
// retries), which DESIGN.md does not list.
func requireDesignFields(tb testing.TB, body []byte) {
	tb.Helper()
	obj := jsonKeys(tb, body)
	for _, k := range designTrackFields {
		if _, ok := obj[k]; !ok {
			tb.Errorf("track answer lacks %q: %s", k, body)
		}
	}
	extra := map[string]bool{"account_id": true, "reset_at": true, "event_id": true, "duplicate": true, "error": true}
	for k := range obj {
		if !extra[k] && !slices.Contains(designTrackFields, k) {
			tb.Errorf("track answer has unexpected field %q: %s", k, body)
		}
	}
}

// wantHeaders checks each header's value; "" means absent.
func wantHeaders(tb testing.TB, h http.Header, want map[string]string) {
	tb.Helper()
	for name, v := range want {
		got, present := h.Get(name), len(h.Values(name)) > 0
		if v == "" && present {
			tb.Errorf("header %s = %q, want absent", name, got)
		} else if got != v {
			tb.Errorf("header %s = %q, want %q", name, got, v)
		}
	}
}

func TestTrack_UnlimitedPlan(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_ent", "enterprise")
	for i := range 3 {
		resp := s.Track(t, key)
		r := decodeTrack(t, resp, http.StatusOK)
		if !r.Allowed || r.Plan != "enterprise" || r.Overage {
			t.Fatalf("call %d: %+v, want allowed on enterprise", i, r)
		}
		obj := jsonKeys(t, resp.Body)
		if string(obj["limit"]) != "null" || string(obj["remaining"]) != "null" {
			t.Errorf("limit %s remaining %s, want null and null", obj["limit"], obj["remaining"])
		}
		wantHeaders(t, resp.Header, map[string]string{"X-RateLimit-Limit": "", "X-RateLimit-Remaining": "",
			"X-RateLimit-Reset": strconv.FormatInt(aprilFirst.Unix(), 10)})
	}
	u := s.MustUsage(t, "acct_ent")
	if u.APICalls != 3 || u.Limit != nil || u.Remaining != nil || u.UsagePercentage != 0 {
		t.Errorf("usage %+v, want 3 calls, no limit", u)
	}
}

func TestTrack_ProOverage(t *testing.T) {
	t.Parallel()
	// A Pro limit of 4 stands for 100,000 to keep the test fast; 2.5 cents
	// per overage call shows the cost is rounded down.
	plans := mustParsePlans(t, "plans:\n  pro: {limit: 4, overage_micros: 25000, monthly_price_cents: 2900}\n")
	s := MustOpenServer(t, WithPlans(plans))
	key := s.MustAccountWithKey(t, "acct_pro", "pro")
	for i := 1; i <= 7; i++ {
		resp := s.Track(t, key)
		r := decodeTrack(t, resp, http.StatusOK)
		wantOverage := i > 4
		if !r.Allowed || r.Overage != wantOverage || *r.Remaining != max(4-int64(i), 0) {
			t.Errorf("call %d: %+v, want allowed, overage %v", i, r, wantOverage)
		}
		// Once the included calls are used, Remaining (and the draft's
		// RateLimit) are left out: a 0 would make clients back off while
		// their calls are allowed.
		remaining, rl := "", ""
		if i < 4 {
			remaining, rl = strconv.Itoa(4-i), resp.Header.Get("RateLimit")
			if rl == "" {
				t.Errorf("call %d: no RateLimit header below the limit", i)
			}
		}
		wantHeaders(t, resp.Header, map[string]string{"X-RateLimit-Limit": "4",
			"X-RateLimit-Remaining": remaining, "RateLimit": rl, "Retry-After": ""})
	}
	u := s.MustUsage(t, "acct_pro")
	if u.APICalls != 7 || u.OverageCalls != 3 || u.OverageCostCents != 7 || u.UsagePercentage != 175 {
		t.Errorf("usage %+v, want 7 calls, 3 overage, 7 cents (7.5 rounded down), 175%%", u)
	}
}

// TestTrack_ProDefaultPlan makes the business plan's example real: 105,000
// calls on the default Pro plan give 5,000 overage calls costing $5.00.
// The first 104,999 go through the meter (the path every transport shares)
// in async mode so the test stays well under 10 s with -race; the last one
// goes over HTTP.
func TestTrack_ProDefaultPlan(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 105,000 calls")
	}
	t.Parallel()
	start := time.Now()
	s := MustOpenServer(t, WithAsync(), WithLedgerOptions(ledger.Options{QueueSize: 200_000}))
	key := s.MustAccountWithKey(t, "acct_bigpro", "pro")
	const n, workers = 104_999, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				_, err := s.Meter.Track(context.Background(), meter.Call{APIKey: key, Endpoint: "/v1/x", Method: "GET"})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("track: %v", err)
	}
	r := decodeTrack(t, s.Track(t, key), http.StatusOK)
	if !r.Allowed || !r.Overage || *r.Limit != 100_000 || *r.Remaining != 0 {
		t.Errorf("call 105,000: %+v, want allowed overage with limit 100000, remaining 0", r)
	}
	u := s.MustUsage(t, "acct_bigpro")
	if u.APICalls != 105_000 || u.OverageCalls != 5_000 || u.OverageCostCents != 500 {
		t.Errorf("usage %+v, want 105000 calls, 5000 overage, 500 cents", u)
	}
	t.Logf("105,000 calls in %v", time.Since(start).Round(time.Millisecond))
}

func TestTrack_FreeLimit(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_free", "free")
	decodeTrack(t, s.Track(t, key), http.StatusOK)
	s.MustFill(t, key, 998) // concurrently: group commit keeps it quick
	last := decodeTrack(t, s.Track(t, key), http.StatusOK)
	if !last.Allowed || *last.Remaining != 0 {
		t.Fatalf("call 1,000: %+v, want allowed with 0 remaining", last)
	}
	seq := s.LastSeq(t)
	for i := range 3 {
		resp := s.Track(t, key)
		e := mustErrorBody(t, resp, http.StatusTooManyRequests, "quota_exceeded")
		if !strings.Contains(e.Message, "Upgrade to Pro for more calls") {
			t.Errorf("message %q lacks the upgrade hint", e.Message)
		}
		requireDesignFields(t, resp.Body)
		r := decodeTrack(t, resp, http.StatusTooManyRequests)
		if r.Allowed || *r.Remaining != 0 || *r.Limit != 1000 || r.Plan != "free" {
			t.Errorf("denial %d: %+v, want denied with limit 1000, remaining 0", i, r)
		}
		retry := strconv.FormatInt(int64(aprilFirst.Sub(s.Clock.Now())/time.Second), 10)
		wantHeaders(t, resp.Header, map[string]string{"Retry-After": retry,
			"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0"})
	}
	// Denied calls are recorded but are not usage. The first carries the
	// limit_reached notice and keeps its own event; the next two may share
	// one coalesced event if the writer commits them together.
	if got := s.LastSeq(t); got < seq+2 || got > seq+3 {
		t.Errorf("last seq %d, want %d or %d: each denial is recorded", got, seq+2, seq+3)
	}
	u := s.MustUsage(t, "acct_free")
	if u.APICalls != 1000 || u.DeniedCalls != 3 || *u.Remaining != 0 || u.UsagePercentage != 100 {
		t.Errorf("usage %+v, want 1000 calls, 3 denied, 100%%", u)
	}
}

// TestTrack_Concurrency: 1,000 goroutines make 3 calls each for one Free
// account; the hard limit holds exactly.
func TestTrack_Concurrency(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_race", "free")
	req := trackRequest(t, trackBody{APIKey: key, Endpoint: "/v1/race", Method: "GET"})
	codes := s.trackConcurrently(req, 1000, 3)
	if codes[http.StatusOK] != 1000 || codes[http.StatusTooManyRequests] != 2000 || len(codes) != 2 {
		t.Fatalf("status counts %v, want 1000 x 200 and 2000 x 429", codes)
	}
	if u := s.MustUsage(t, "acct_race"); u.APICalls != 1000 || u.DeniedCalls != 2000 {
		t.Errorf("usage %+v, want 1000 calls and 2000 denied", u)
	}
	if err := s.Ledger.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	events, err := s.Ledger.EventsAfter(context.Background(), 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	// Concurrent denials committed together share coalesced events
	// (ledger/coalesce.go): count the calls the events stand for.
	var allowed, denied int64
	for _, ev := range events {
		if ev.Decision == meter.Allowed {
			allowed += ev.Calls()
		} else {
			denied += ev.Calls()
		}
	}
	if len(events) > 3000 || allowed != 1000 || denied != 2000 {
		t.Errorf("ledger holds %d events for %d allowed and %d denied calls; want at most 3000 for 1000 and 2000",
			len(events), allowed, denied)
	}
}

// TestTrack_Idempotency: a retried id gets the first decision back, marked
// duplicate, counts nothing, and survives a restart.
func TestTrack_Idempotency(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_idem", "free")
	call := func(id string) trackBody {
		return trackBody{APIKey: key, Endpoint: "/v1/pay", Method: "POST", ID: id}
	}
	first := decodeTrack(t, s.Do(t, trackRequest(t, call("req-1"))), http.StatusOK)
	if first.Duplicate || first.EventID == "" {
		t.Fatalf("first call %+v, want a new event", first)
	}
	s.MustFill(t, key, 999)
	denied := decodeTrack(t, s.Do(t, trackRequest(t, call("req-2"))), http.StatusTooManyRequests)
	if denied.Duplicate || denied.Allowed {
		t.Fatalf("call past the limit %+v, want a new denial", denied)
	}
	seq := s.LastSeq(t)

	for _, restart := range []bool{false, true} {
		if restart {
			s = s.MustReopen(t)
		}
		r := decodeTrack(t, s.Do(t, trackRequest(t, call("req-1"))), http.StatusOK)
		if !r.Duplicate || !r.Allowed || r.EventID != first.EventID {
			t.Errorf("restart=%v: retry of req-1 %+v, want allowed duplicate of %s", restart, r, first.EventID)
		}
		resp := s.Do(t, trackRequest(t, call("req-2")))
		mustErrorBody(t, resp, http.StatusTooManyRequests, "quota_exceeded")
		r = decodeTrack(t, resp, http.StatusTooManyRequests)
		if !r.Duplicate || r.Allowed || r.EventID != denied.EventID {
			t.Errorf("restart=%v: retry of req-2 %+v, want denied duplicate of %s", restart, r, denied.EventID)
		}
		if got := s.LastSeq(t); got != seq {
			t.Errorf("restart=%v: last seq %d, want %d: retries record nothing", restart, got, seq)
		}
		if u := s.MustUsage(t, "acct_idem"); u.APICalls != 1000 || u.DeniedCalls != 1 {
			t.Errorf("restart=%v: usage %+v, want 1000 calls and 1 denied", restart, u)
		}
	}
}

// TestTrack_IdempotencyConcurrent: 50 simultaneous calls with one id count
// once, and all get the same event back.
func TestTrack_IdempotencyConcurrent(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_burst", "free")
	req := trackRequest(t, trackBody{APIKey: key, Endpoint: "/v1/pay", Method: "POST", ID: "burst-1"})
	results := make([]trackResult, 50)
	errs := make([]error, 50)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			resp, err := s.Send(req)
			if err == nil && resp.Status != http.StatusOK {
				err = fmt.Errorf("status %d: %s", resp.Status, resp.Body)
			}
			if err == nil {
				err = json.Unmarshal(resp.Body, &results[i])
			}
			errs[i] = err
		})
	}
	wg.Wait()
	fresh := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if !r.Duplicate {
			fresh++
		}
		if !r.Allowed || r.EventID != results[0].EventID {
			t.Errorf("call %d: %+v, want allowed with event %s", i, r, results[0].EventID)
		}
	}
	if fresh != 1 || s.LastSeq(t) != 1 {
		t.Errorf("%d calls not marked duplicate, last seq %d; want 1 and 1", fresh, s.LastSeq(t))
	}
	if u := s.MustUsage(t, "acct_burst"); u.APICalls != 1 {
		t.Errorf("api_calls %d, want 1", u.APICalls)
	}
}
