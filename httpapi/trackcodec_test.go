package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// codecSeeds are track bodies the fast decoder takes and bodies it must
// leave to encoding/json: escapes, other cases, nulls, odd numbers,
// duplicates, trailing data, broken JSON.
var codecSeeds = []string{
	`{"api_key":"mk_abc","endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`,
	` {"account_id":"acct_1","endpoint":"/v1/x","method":"POST","status":0,"latency_ms":12.5e-1,"id":"evt-1"} ` + "\n",
	`{}`, `{ }`, `{"api_key":""}`,
	`{"api_key":"a","api_key":"b"}`,
	`{"latency_ms":1,"latency_ms":2}`,
	`{"latency_ms":null}`, `{"api_key":null}`, `{"api_key":"a","api_key":null}`,
	`{"API_KEY":"a"}`, `{"Api_Key":"a","api_key":"b"}`, `{"ſtatus":1}`,
	`{"endpoint":"/v1/\u00e9"}`, `{"endpoint":"/v1/é"}`, `{"endpoint":"a\"b"}`, "{\"endpoint\":\"\xff\"}",
	`{"status":-0}`, `{"status":01}`, `{"status":1.0}`, `{"status":1e2}`, `{"status":2147483648}`,
	`{"status":9223372036854775808}`, `{"status":"200"}`, `{"status":true}`,
	`{"latency_ms":1e309}`, `{"latency_ms":-0.5}`, `{"latency_ms":.5}`, `{"latency_ms":5.}`, `{"latency_ms":1e}`,
	`{"latency_ms":-}`, `{"latency_ms":"3"}`, `{"latency_ms":[1]}`,
	`{"extra":1}`, `{"api_key":"a",}`, `{,}`, `{"api_key" "a"}`, `{"api_key":"a"}{}`, `{"api_key":"a"} x`,
	`[]`, `null`, `""`, ``, ` `, `{`, `{"api_key":"a"`, `{"api_key":"a`, "\xef\xbb\xbf{}",
}

// TestDecodeTrack_FastPathTaken keeps the agreement fuzz honest: the
// ordinary bodies must actually be decoded by the fast path.
func TestDecodeTrack_FastPathTaken(t *testing.T) {
	for _, body := range codecSeeds[:5] {
		var req trackRequest
		if !parseTrackFast([]byte(body), &req) {
			t.Errorf("fast path refused %q", body)
		}
	}
	var req trackRequest
	if !parseTrackFast([]byte(codecSeeds[0]), &req) || req.APIKey != "mk_abc" || req.Endpoint != "/v1/orders/1" ||
		req.Method != "GET" || req.Status != 200 || req.LatencyMS == nil || *req.LatencyMS != 3 {
		t.Errorf("decoded %+v", req)
	}
}

// FuzzTrackDecode: for any body, the track decoder and DecodeStrict
// (encoding/json) agree on the result or on the exact error.
func FuzzTrackDecode(f *testing.F) {
	for _, s := range codecSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got, want trackRequest
		gotErr := decodeTrackBytes(body, &got)
		wantErr := DecodeStrict(bytes.NewReader(body), &want)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("%q: error %v, encoding/json says %v", body, gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		if (got.LatencyMS == nil) != (want.LatencyMS == nil) ||
			got.LatencyMS != nil && math.Float64bits(*got.LatencyMS) != math.Float64bits(*want.LatencyMS) {
			t.Fatalf("%q: latency %v, encoding/json says %v", body, got.LatencyMS, want.LatencyMS)
		}
		got.LatencyMS, want.LatencyMS, got.latency, want.latency = nil, nil, 0, 0
		if got != want {
			t.Fatalf("%q: decoded %+v, encoding/json says %+v", body, got, want)
		}
	})
}

// FuzzTrackEncode: the track encoder writes exactly what json.Encoder
// writes for the same answer, allowed or denied (429).
func FuzzTrackEncode(f *testing.F) {
	f.Add(true, false, "acct_1", "pro", int64(100000), true, int64(1775001600), "2026-04-01T00:00:00Z", false, "")
	f.Add(false, true, "a<b>&\"c\\", "frée\u2028", int64(-1), false, int64(0), "\x00\xff", true, "evt_1")
	f.Add(true, false, "", "", int64(math.MaxInt64), true, int64(math.MinInt64), "", true, "\u00e9")
	f.Fuzz(func(t *testing.T, allowed, dup bool, account, plan string, limit int64, limited bool, reset int64,
		resetAt string, overage bool, eventID string) {
		r := trackResponse{Allowed: allowed, Duplicate: dup, AccountID: account, Plan: plan, Reset: reset,
			ResetAt: resetAt, Overage: overage, EventID: eventID}
		if limited {
			remaining := limit / 2
			r.Limit, r.Remaining = &limit, &remaining
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(r); err != nil {
			t.Fatal(err)
		}
		if got := appendTrackResponse(nil, &r); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("encoded\n%s\nencoding/json writes\n%s", got, want.Bytes())
		}
		var denied quotaExceededBody
		denied.Error.Code, denied.Error.Message, denied.trackResponse = "quota_exceeded", plan+account, r
		want.Reset()
		if err := json.NewEncoder(&want).Encode(denied); err != nil {
			t.Fatal(err)
		}
		if got := appendQuotaExceeded(nil, plan+account, &r); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("encoded denial\n%s\nencoding/json writes\n%s", got, want.Bytes())
		}
	})
}

// BenchmarkTrackCodec compares the track decoder and encoder with
// encoding/json on the common body and answer.
func BenchmarkTrackCodec(b *testing.B) {
	body := []byte(`{"api_key":"mk_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG","endpoint":"/v1/orders/1","method":"GET","status":200,"latency_ms":3}`)
	limit, remaining := int64(100000), int64(99000)
	resp := trackResponse{Allowed: true, AccountID: "acct_0001", Plan: "pro", Limit: &limit, Remaining: &remaining,
		Reset: 1775001600, ResetAt: "2026-04-01T00:00:00Z"}
	b.Run("Decode/fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req trackRequest
			if err := decodeTrackBytes(body, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode/encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req trackRequest
			if err := DecodeStrict(bytes.NewReader(body), &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	buf := make([]byte, 0, 512)
	b.Run("Encode/fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendTrackResponse(buf[:0], &resp)
		}
	})
	msg := "Monthly limit of 1000 calls on the free plan reached; it resets at 2026-04-01T00:00:00Z. Upgrade to Pro for more calls."
	b.Run("Encode429/fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendQuotaExceeded(buf[:0], msg, &resp)
		}
	})
	var out bytes.Buffer
	b.Run("Encode429/encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out.Reset()
			var denied quotaExceededBody
			denied.Error.Code, denied.Error.Message, denied.trackResponse = "quota_exceeded", msg, resp
			if err := json.NewEncoder(&out).Encode(denied); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Encode/encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out.Reset()
			if err := json.NewEncoder(&out).Encode(&resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
