package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// keyPlaceholder in a fuzz input is replaced by the server's real API key,
// so the fuzzer explores bodies that get past authentication too.
const keyPlaceholder = "$KEY"

// trackSeeds are the seed corpus: valid and invalid track bodies.
var trackSeeds = []string{
	`{"api_key":"$KEY","endpoint":"/v1/users/123","method":"GET"}`,
	`{"api_key":"$KEY","endpoint":"/v1/orders","method":"post","status":500,"latency_ms":12.5}`,
	`{"api_key":"$KEY","endpoint":"/v1/pay","method":"POST","id":"fuzz-1"}`,
	`{"api_key":"$KEY","endpoint":"/v1/pay","method":"POST","id":"fuzz-1"}`,
	`{"account_id":"acct_fuzz","endpoint":"/v1/x?y=1#z","method":"DELETE","status":404}`,
	`{"account_id":"acct_nobody","endpoint":"/v1/x","method":"GET"}`,
	`{"api_key":"mk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","endpoint":"/v1/x","method":"GET"}`,
	`{"api_key":"$KEY\r\n","endpoint":"/v1/x","method":"GET"}`,
	`{"api_key":"$KEY","endpoint":"","method":"GET"}`,
	`{"api_key":"$KEY","endpoint":"/v1/x","method":"G3T"}`,
	`{"api_key":"$KEY","endpoint":"/v1/x","method":"GET","latency_ms":1e309}`,
	`{"api_key":"$KEY","endpoint":"/v1/x","method":"GET","latency_ms":-0.5}`,
	`{"api_key":"$KEY","endpoint":"/v1/x","method":"GET","status":1000}`,
	`{"api_key":"$KEY","endpoint":"/\u0000/\ud800","method":"GET"}`,
	`{"api_key":"$KEY","endpoint":"/v1/x","method":"GET","extra":true}`,
	`{"api_key":"$KEY","endpoint":"/v1/x","method":"GET"}{}`,
	`{"api_key":"$KEY","api_key":"other","endpoint":"/v1/x","method":"GET"}`,
	`{"endpoint":"/v1/x","method":"GET"}`,
	`{}`, `{}{}`, ``, `null`, `[]`, `"x"`, `{"api_key":`, `{"api_key":5}`, "\xff\xfe",
	`{"api_key":"$KEY","endpoint":"/v1/x","method":"GET","id":"` + strings.Repeat("i", 1<<20) + `"}`,
}

// FuzzTrackRequest posts arbitrary bodies to /v1/track: the answer is
// always one of the documented statuses with a JSON body, and only a
// decided call (200 or 429, not a duplicate) adds exactly one event.
func FuzzTrackRequest(f *testing.F) {
	for _, seed := range trackSeeds {
		f.Add([]byte(seed))
	}
	s := MustOpenServer(f)
	key := s.MustAccountWithKey(f, "acct_fuzz", "free")
	handler := s.API.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte(keyPlaceholder), []byte(key))
		seq := s.LastSeq(t)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/track", bytes.NewReader(body)))
		checkFuzzAnswer(t, rec, seq, s.LastSeq(t))
	})
}

func checkFuzzAnswer(t *testing.T, rec *httptest.ResponseRecorder, before, after uint64) {
	t.Helper()
	switch rec.Code {
	case 200, 400, 401, 404, 413, 429:
	default:
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var answer struct {
		Allowed   bool `json:"allowed"`
		Duplicate bool `json:"duplicate"`
		Error     *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if !json.Valid(rec.Body.Bytes()) || json.Unmarshal(rec.Body.Bytes(), &answer) != nil {
		t.Fatalf("status %d: body is not a JSON object: %q", rec.Code, rec.Body)
	}
	decided := rec.Code == 200 || rec.Code == 429
	if !decided && (answer.Error == nil || answer.Error.Code == "" || answer.Error.Message == "") {
		t.Errorf("status %d without error code and message: %s", rec.Code, rec.Body)
	}
	if decided && answer.Allowed != (rec.Code == 200) {
		t.Errorf("status %d with allowed=%v", rec.Code, answer.Allowed)
	}
	want := before
	if decided && !answer.Duplicate {
		want++ // a denial is recorded too, but never counted as usage
	}
	if after != want {
		t.Errorf("status %d (duplicate=%v) moved last seq %d -> %d, want %d", rec.Code, answer.Duplicate, before, after, want)
	}
}
