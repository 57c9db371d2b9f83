package httpapi_test

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/meter"
)

// The same call, GET /v1/orders/42 with an API key, made through each way
// in: /v1/track, the reverse proxy, forward auth and the Go middleware
// (and /v1/events, which has no per-call headers). Each way meters its own
// account on the same plan, call after call past the limit: the answers
// carry the same headers and the ledger the same records.
func TestGateway_FourWaysAgree(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{plans: "plans:\n  free: {limit: 5, hard: true}\n"})
	keys := map[string]string{}
	for _, way := range []string{"track", "proxy", "authz", "middleware", "events"} {
		keys[way] = s.mustAccountKey("acct_"+way, "free")
	}
	up := mustUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "order 42") })
	px := s.mustProxy(up.URL)
	mw := httptest.NewServer(httpapi.Middleware(s.Meter)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "order 42")
	})))
	t.Cleanup(mw.Close)
	ways := map[string]func(key string) gwResponse{
		"track": func(key string) gwResponse {
			return gwMustDo(t, s.Client, http.MethodPost, s.HTTP.URL+"/v1/track", nil,
				gwJSON(t, map[string]any{"api_key": key, "endpoint": "/v1/orders/42", "method": "GET", "status": 200}))
		},
		"proxy": func(key string) gwResponse {
			return gwMustDo(t, s.Client, http.MethodGet, px.URL+"/v1/orders/42", map[string]string{"X-API-Key": key}, "")
		},
		"authz": func(key string) gwResponse {
			return gwMustDo(t, s.Client, http.MethodGet, s.HTTP.URL+"/v1/authz", map[string]string{"X-API-Key": key,
				"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/orders/42"}, "")
		},
		"middleware": func(key string) gwResponse {
			return gwMustDo(t, s.Client, http.MethodGet, mw.URL+"/v1/orders/42", map[string]string{"X-API-Key": key}, "")
		},
	}
	for call := 1; call <= 7; call++ {
		wantStatus := http.StatusOK
		if call > 5 {
			wantStatus = http.StatusTooManyRequests
		}
		got := map[string]http.Header{}
		for way, do := range ways {
			resp := do(keys[way])
			if resp.Status != wantStatus {
				t.Fatalf("call %d via %s: status %d %s, want %d", call, way, resp.Status, resp.Body, wantStatus)
			}
			got[way] = resp.Header
		}
		ref := gwPick(got["proxy"], gwRateLimitHeaders)
		if want := fmt.Sprint(max(5-call, 0)); ref["X-RateLimit-Remaining"] != want || ref["RateLimit-Policy"] != `"free";q=5;w=2678400` {
			t.Fatalf("call %d: headers %v, want %s remaining under the free policy", call, ref, want)
		}
		if warn := ref["X-RateLimit-Warning"] != ""; warn != (call >= 4) {
			t.Errorf("call %d: warning %q, want one from 80%% (the 4th call) on", call, ref["X-RateLimit-Warning"])
		}
		for way, h := range got {
			want := gwPick(got["proxy"], gwRateLimitHeaders)
			if have := gwPick(h, gwRateLimitHeaders); !maps.Equal(have, want) {
				t.Errorf("call %d: %s headers %v, want the proxy's %v", call, way, have, want)
			}
		}
	}
	var events []map[string]any
	for i := range 5 {
		events = append(events, map[string]any{"id": fmt.Sprint("call-", i), "endpoint": "/v1/orders/42",
			"method": "GET", "status": 200, "timestamp": gwNow.Format(time.RFC3339)})
	}
	if resp, out := s.postEvents(eventsBody(t, events), map[string]string{"X-API-Key": keys["events"]}); out.Accepted != 5 {
		t.Fatalf("events: %d %s, want 5 accepted", resp.Status, resp.Body)
	}

	// Records: the same shape once what differs by nature is set aside
	// (account, key, sequence, measured latency, the batch's ids), and the
	// status each way can know: forward auth never sees the API's answer.
	shape := func(way string) []meter.Event {
		// Denials committed in one group may be coalesced into one record
		// (ledger/writer.go): compare calls, one record per call.
		var evs []meter.Event
		for _, ev := range s.events("acct_" + way) {
			for range ev.Calls() {
				one := ev
				one.Coalesced = 0
				evs = append(evs, one)
			}
		}
		for i := range evs {
			ev := &evs[i]
			if ev.KeyID == "" || ev.Node == "" || ev.Seq == 0 {
				t.Errorf("%s event %+v: want key, node and sequence set", way, ev)
			}
			if want := knownStatus(way, ev.Decision); ev.Status != want {
				t.Errorf("%s event %d status %d, want %d", way, i, ev.Status, want)
			}
			ev.Seq, ev.Node, ev.AccountID, ev.KeyID, ev.LatencyMicros, ev.IdempotencyKey, ev.Status = 0, "", "", "", 0, "", 0
		}
		return evs
	}
	ref := shape("proxy")
	if len(ref) != 7 || ref[0].Endpoint != "/v1/orders/{id}" || ref[0].Method != "GET" || !ref[0].Time.Equal(gwNow) ||
		ref[4].Decision != meter.Allowed || ref[5].Decision != meter.Denied {
		t.Fatalf("proxy records %+v, want 5 allowed then 2 denied GET /v1/orders/{id}", ref)
	}
	for _, way := range []string{"track", "authz", "middleware", "events"} {
		want := ref
		if way == "events" {
			want = ref[:5] // reported calls are never denied
		}
		if got := shape(way); !reflect.DeepEqual(got, want) {
			t.Errorf("%s records\n%+v\nwant the proxy's\n%+v", way, got, want)
		}
	}
}

// knownStatus is the API status a way records for the call.
func knownStatus(way string, d meter.Decision) int {
	switch {
	case way == "authz":
		return 0 // forward auth never sees the API's answer
	case way == "track" || way == "events":
		return 200 // what the caller reported
	case d == meter.Denied:
		return 0 // the gateway answered itself; the API never saw the call
	}
	return 200
}

// A CORS preflight carries no credentials: every gateway way lets it
// through to the API's own CORS handling without metering it.
func TestGateway_PreflightUnmetered(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_cors", "free")
	cors := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.WriteHeader(http.StatusNoContent)
	}
	up := mustUpstream(t, cors)
	px := s.mustProxy(up.URL)
	mw := httptest.NewServer(httpapi.Middleware(s.Meter)(http.HandlerFunc(cors)))
	t.Cleanup(mw.Close)
	pre := map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
		"X-Meter-Account": "spoofed"}
	tests := []struct {
		name, method, url string
		header            map[string]string
		status            int
	}{
		{"OptionsWithoutCORSIsMetered", http.MethodOptions, px.URL + "/v1/orders", map[string]string{"X-API-Key": key}, http.StatusNoContent},
		{"Middleware", http.MethodOptions, mw.URL + "/v1/orders", pre, http.StatusNoContent},
		{"Authz", http.MethodGet, s.HTTP.URL + "/v1/authz", map[string]string{"Origin": "https://app.example.com",
			"Access-Control-Request-Method": "POST", "X-Forwarded-Method": "OPTIONS", "X-Forwarded-Uri": "/v1/orders"}, http.StatusOK},
		{"Proxy", http.MethodOptions, px.URL + "/v1/orders", pre, http.StatusNoContent}, // last: see below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := gwMustDo(t, s.Client, tt.method, tt.url, tt.header, "")
			if resp.Status != tt.status {
				t.Fatalf("status %d %s, want %d", resp.Status, resp.Body, tt.status)
			}
		})
	}
	if got := up.Last().Header.Get("X-Meter-Account"); got != "" {
		t.Errorf("the preflight reached the upstream with X-Meter-Account %q: a client's value must not pass", got)
	}
	if evs := s.events("acct_cors"); len(evs) != 1 || evs[0].Method != http.MethodOptions {
		t.Errorf("events %+v, want only the keyed OPTIONS call", evs)
	}
}
