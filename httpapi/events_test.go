package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
)

// gwEventsAnswer is the body of a POST /v1/events answer.
type gwEventsAnswer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   []struct {
		Index  int    `json:"index"`
		ID     string `json:"id"`
		Code   string `json:"code"`
		Reason string `json:"reason"`
	} `json:"rejected"`
	DuplicateIndexes []int `json:"duplicate_indexes"`
}

func (s *gwServer) postEvents(body string, header map[string]string) (gwResponse, gwEventsAnswer) {
	s.tb.Helper()
	resp := gwMustDo(s.tb, s.Client, http.MethodPost, s.HTTP.URL+"/v1/events", header, body)
	var out gwEventsAnswer
	if resp.Status == http.StatusOK {
		gwUnmarshal(s.tb, resp.Body, &out)
	}
	return resp, out
}

func eventsBody(tb testing.TB, events []map[string]any) string {
	return gwJSON(tb, map[string]any{"events": events})
}

// Ten thousand events in ten requests, then the same ten requests again:
// the resend is all duplicates and counts nothing.
func TestEvents_TenThousandResentOnce(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_batch", "pro")
	bodies := make([]string, 10)
	for b := range bodies {
		events := make([]map[string]any, httpapi.MaxBatchEvents)
		for i := range events {
			n := b*httpapi.MaxBatchEvents + i
			events[i] = map[string]any{"id": fmt.Sprintf("evt-%05d", n), "endpoint": fmt.Sprintf("/v1/items/%d", n),
				"method": "GET", "status": 200, "latency_ms": 12.5,
				"timestamp": gwNow.Add(-time.Duration(n) * time.Second).Format(time.RFC3339)}
		}
		bodies[b] = eventsBody(t, events)
	}
	hdr := map[string]string{"X-API-Key": key}
	for round, want := range []struct{ accepted, duplicates int }{{1000, 0}, {0, 1000}} {
		for b, body := range bodies {
			resp, out := s.postEvents(body, hdr)
			if resp.Status != http.StatusOK || out.Accepted != want.accepted || out.Duplicates != want.duplicates ||
				len(out.Rejected) != 0 || len(out.DuplicateIndexes) != want.duplicates {
				t.Fatalf("round %d request %d: %d accepted %d duplicates %d rejected (status %d), want %d/%d/0",
					round, b, out.Accepted, out.Duplicates, len(out.Rejected), resp.Status, want.accepted, want.duplicates)
			}
		}
		if q := s.quota("acct_batch"); q.Calls != 10000 || q.Overage != 0 {
			t.Fatalf("round %d: %d calls %d overage, want 10000 and 0", round, q.Calls, q.Overage)
		}
	}
	if n := len(s.events("acct_batch")); n != 10000 {
		t.Errorf("%d events in the ledger, want 10000", n)
	}
	if r := s.endpoints("acct_batch")["GET /v1/items/{id}"]; r.APICalls != 10000 || r.AvgLatencyMS != 12.5 {
		t.Errorf("endpoint row %+v, want 10000 calls at 12.5 ms", r)
	}
}

func TestEvents_MixedBatch(t *testing.T) {
	t.Parallel()
	// The service token lets event 10 name its account by account_id.
	s := mustGWServer(t, gwOptions{serviceToken: "svc-mixed"})
	key := s.mustAccountKey("acct_mixed", "pro")
	other := s.mustAccountKey("acct_other", "free")
	ok := func(id string) map[string]any { return map[string]any{"id": id, "endpoint": "/v1/x", "method": "GET"} }
	with := func(id, field string, v any) map[string]any { e := ok(id); e[field] = v; return e }
	without := func(id, field string) map[string]any { e := ok(id); delete(e, field); return e }
	events := []map[string]any{
		ok("a"),           // 0 accepted
		without("", "id"), // 1 no id
		with("c", "timestamp", "2026-02-27T10:00:00Z"),       // 2 before the open period
		with("d", "timestamp", "yesterday"),                  // 3 not RFC 3339
		with("e", "api_key", "mk_this-key-was-never-issued"), // 4 unknown key
		with("f", "method", "G E T"),                         // 5 bad method
		with("g", "surprise", true),                          // 6 unknown field
		ok("a"),                                              // 7 duplicate of 0
		with("h", "api_key", other),                          // 8 accepted, another account's key
		with("i", "timestamp", "2026-03-02T09:15:00+01:00"),  // 9 accepted
		with("j", "account_id", "acct_nobody"),               // 10 unknown account (no header key applies)
	}
	delete(events[10], "api_key")
	body := strings.Replace(eventsBody(t, events), `"events":[`, `"events":[42,`, 1) // index 0: not an object
	resp, out := s.postEvents(body, map[string]string{"X-API-Key": key, "Authorization": "Bearer svc-mixed"})
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d %s", resp.Status, resp.Body)
	}
	// Indexes below are shifted by the leading 42.
	wantRejected := map[int]string{0: "invalid_request", 2: "invalid_request", 3: "invalid_request",
		4: "invalid_request", 5: "invalid_api_key", 6: "invalid_request", 7: "invalid_request",
		11: "account_not_found"}
	if out.Accepted != 3 || out.Duplicates != 1 || len(out.DuplicateIndexes) != 1 || out.DuplicateIndexes[0] != 8 {
		t.Errorf("accepted %d duplicates %d at %v, want 3 and 1 at [8]: %s", out.Accepted, out.Duplicates, out.DuplicateIndexes, resp.Body)
	}
	if len(out.Rejected) != len(wantRejected) {
		t.Fatalf("rejected %+v, want indexes %v", out.Rejected, wantRejected)
	}
	last := -1
	for _, r := range out.Rejected {
		if r.Index <= last {
			t.Errorf("rejections not in index order: %+v", out.Rejected)
		}
		last = r.Index
		if code, ok := wantRejected[r.Index]; !ok || code != r.Code || r.Reason == "" {
			t.Errorf("rejection %+v, want code %q and a reason", r, code)
		}
	}
	for _, c := range []struct {
		index int
		in    string
	}{{2, "id"}, {3, "timestamp"}, {4, "RFC 3339"}, {6, "method"}, {7, "surprise"}} {
		for _, r := range out.Rejected {
			if r.Index == c.index && !strings.Contains(r.Reason, c.in) {
				t.Errorf("rejection %d reason %q, want it to mention %q", c.index, r.Reason, c.in)
			}
		}
	}
	if q := s.quota("acct_mixed"); q.Calls != 2 {
		t.Errorf("acct_mixed calls %d, want 2", q.Calls)
	}
	if q := s.quota("acct_other"); q.Calls != 1 {
		t.Errorf("acct_other calls %d, want 1", q.Calls)
	}
	stamped := map[string]time.Time{}
	for _, ev := range s.events("acct_mixed") {
		stamped[ev.IdempotencyKey] = ev.Time
	}
	if len(stamped) != 2 || !stamped["a"].Equal(gwNow) || !stamped["i"].Equal(time.Date(2026, 3, 2, 8, 15, 0, 0, time.UTC)) {
		t.Errorf("event times %v, want a at the meter's now and i at 2026-03-02T08:15:00Z", stamped)
	}
}

func TestEvents_Limits(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_lim", "pro")
	one := map[string]any{"id": "x", "endpoint": "/v1/x", "method": "GET"}
	many := make([]map[string]any, httpapi.MaxBatchEvents+1)
	for i := range many {
		many[i] = map[string]any{"id": fmt.Sprint(i), "endpoint": "/v1/x", "method": "GET"}
	}
	huge := `{"events":[{"id":"x","endpoint":"/v1/x","method":"GET","api_key":"` + strings.Repeat("k", httpapi.MaxEventsBodyBytes) + `"}]}`
	hdr := map[string]string{"X-API-Key": key}
	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"Empty", `{"events":[]}`, 400, "invalid_request"},
		{"TooMany", eventsBody(t, many), 400, "invalid_request"},
		{"TooLarge", huge, 413, "body_too_large"},
		{"NotJSON", `{"events":`, 400, "invalid_request"},
		{"UnknownTopField", `{"events":[` + gwJSON(t, one) + `],"extra":1}`, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := s.postEvents(tt.body, hdr)
			if code := gwErrorCode(t, resp, tt.status); code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
		})
	}
	if q := s.quota("acct_lim"); q.Calls != 0 {
		t.Errorf("calls %d, want 0", q.Calls)
	}
	t.Run("ServiceToken", func(t *testing.T) {
		const token = "mst_events-service-token"
		st := mustGWServer(t, gwOptions{serviceToken: token})
		k := st.mustAccountKey("acct_tok", "pro")
		body := eventsBody(t, []map[string]any{{"id": "1", "endpoint": "/v1/x", "method": "GET", "api_key": k}})
		if resp, _ := st.postEvents(body, nil); resp.Status != http.StatusUnauthorized {
			t.Errorf("without the token: %d, want 401", resp.Status)
		}
		if resp, out := st.postEvents(body, map[string]string{"Authorization": "Bearer " + token}); resp.Status != 200 || out.Accepted != 1 {
			t.Errorf("with the token: %d %s, want 1 accepted", resp.Status, resp.Body)
		}
	})
}
