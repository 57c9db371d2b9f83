package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// The /v1/track body and answer have fixed shapes, so they get a
// purpose-built decoder and encoder. Both are exact: the decoder takes only
// input it can prove encoding/json would read the same way (plain
// lowercase field names, strings of printable ASCII without escapes,
// plain numbers) and hands everything else — every error included — to
// DecodeStrict on the same bytes; the encoder writes what json.Encoder
// would, byte for byte, falling back to it for strings it would escape.
// FuzzTrackDecode and FuzzTrackEncode hold them to that.

// trackBufs holds request and response buffers between calls.
var trackBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// decodeTrack reads r's body into req: the fast path when the body's
// length is declared and within limit, decodeJSON otherwise (unknown
// length, chunked, too large, or a body longer than declared, which only
// a hand-built request can have).
func decodeTrack(w http.ResponseWriter, r *http.Request, req *trackRequest, limit int64) error {
	n := r.ContentLength
	if n <= 0 || n > limit {
		return decodeJSON(w, r, req, limit)
	}
	bp := trackBufs.Get().(*[]byte)
	defer trackBufs.Put(bp)
	buf := (*bp)[:0]
	if int64(cap(buf)) < n {
		buf = make([]byte, 0, n)
	}
	buf = buf[:n]
	if cap(buf) <= maxPooledBuf {
		*bp = buf
	}
	got, err := io.ReadFull(r.Body, buf)
	if err != nil {
		// A short body meets the error decodeJSON would meet.
		return DecodeStrict(io.MultiReader(bytesReader(buf[:got]), errReader{err}), req)
	}
	var one [1]byte
	if k, _ := r.Body.Read(one[:]); k > 0 {
		r.Body = io.NopCloser(io.MultiReader(bytesReader(buf), bytesReader(one[:]), r.Body))
		return decodeJSON(w, r, req, limit)
	}
	return decodeTrackBytes(buf, req)
}

// maxPooledBuf bounds the buffers trackBufs keeps: a rare large body is
// not held on to.
const maxPooledBuf = 16 << 10

// decodeTrackBytes decodes one track body: fast when it can, else exactly
// as DecodeStrict does.
func decodeTrackBytes(b []byte, req *trackRequest) error {
	if parseTrackFast(b, req) {
		return nil
	}
	*req = trackRequest{} // drop what the fast path set before it gave up
	return DecodeStrict(bytesReader(b), req)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// bytesReader is a reader over b that does not keep b once drained.
func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// parseTrackFast parses b as a track body when it is plain enough to be
// sure of encoding/json's reading; false means "not sure", never "bad".
func parseTrackFast(b []byte, req *trackRequest) bool {
	p := fastParser{b: b}
	// Field values are substrings of one copy of the body: one allocation
	// for all of them. The id, which the meter may keep for deduplication,
	// gets its own copy so it does not hold the body.
	p.s = string(b)
	p.space()
	if !p.byte('{') {
		return false
	}
	p.space()
	if p.byte('}') {
		return p.end()
	}
	for {
		key, ok := p.plainString()
		if !ok {
			return false
		}
		p.space()
		if !p.byte(':') {
			return false
		}
		p.space()
		if !p.field(key, req) {
			return false
		}
		p.space()
		if p.byte(',') {
			p.space()
			continue
		}
		if p.byte('}') {
			return p.end()
		}
		return false
	}
}

type fastParser struct {
	b []byte
	s string // b as a string
	i int
}

func (p *fastParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end accepts only trailing white space.
func (p *fastParser) end() bool {
	p.space()
	return p.i == len(p.b)
}

// plainString reads a string of printable ASCII without escapes, as a
// substring of p.s.
func (p *fastParser) plainString() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", false
		}
		p.i++
	}
	return "", false
}

// number reads a JSON number's text; integer reports it has no fraction
// or exponent.
func (p *fastParser) number() (text []byte, integer, ok bool) {
	start := p.i
	p.byte('-')
	switch {
	case p.byte('0'):
	case p.digits() == 0:
		return nil, false, false
	}
	integer = true
	if p.byte('.') {
		integer = false
		if p.digits() == 0 {
			return nil, false, false
		}
	}
	if p.byte('e') || p.byte('E') {
		integer = false
		if !p.byte('+') {
			p.byte('-')
		}
		if p.digits() == 0 {
			return nil, false, false
		}
	}
	return p.b[start:p.i], integer, true
}

func (p *fastParser) digits() int {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// field reads the value of key into req. Keys must match exactly (encoding/json
// also matches other cases: those take the slow path).
func (p *fastParser) field(key string, req *trackRequest) bool {
	var dst *string
	switch key {
	case "api_key":
		dst = &req.APIKey
	case "account_id":
		dst = &req.AccountID
	case "endpoint":
		dst = &req.Endpoint
	case "method":
		dst = &req.Method
	case "id":
		dst = &req.ID
	case "status":
		text, integer, ok := p.number()
		if !ok || !integer || len(text) > 10 {
			return false
		}
		n, err := strconv.Atoi(string(text))
		if err != nil || int64(n) != int64(int32(n)) {
			return false
		}
		req.Status = n
		return true
	case "latency_ms":
		text, _, ok := p.number()
		if !ok {
			return false
		}
		f, err := strconv.ParseFloat(string(text), 64)
		if err != nil {
			return false
		}
		req.latency = f
		req.LatencyMS = &req.latency
		return true
	default:
		return false
	}
	v, ok := p.plainString()
	if !ok {
		return false
	}
	if dst == &req.ID {
		v = strings.Clone(v)
	}
	*dst = v
	return true
}

// writeTrackJSON answers status with body encoded as json.Encoder would.
func writeTrackJSON(w http.ResponseWriter, status int, body *trackResponse) {
	w.Header()["Content-Type"] = contentTypeJSON[:1:1]
	w.WriteHeader(status)
	bp := trackBufs.Get().(*[]byte)
	b := appendTrackResponse((*bp)[:0], body)
	w.Write(b)
	*bp = b
	trackBufs.Put(bp)
}

// writeQuotaExceeded answers status with a quota denial's body, encoded
// as json.Encoder would encode quotaExceededBody: a denial stays cheap.
func writeQuotaExceeded(w http.ResponseWriter, status int, message string, body *trackResponse) {
	w.Header()["Content-Type"] = contentTypeJSON[:1:1]
	w.WriteHeader(status)
	bp := trackBufs.Get().(*[]byte)
	b := appendQuotaExceeded((*bp)[:0], message, body)
	w.Write(b)
	*bp = b
	trackBufs.Put(bp)
}

// appendQuotaExceeded appends quotaExceededBody's JSON: the error object,
// then the decision's fields.
func appendQuotaExceeded(b []byte, message string, t *trackResponse) []byte {
	b = append(b, `{"error":{"code":"quota_exceeded","message":`...)
	b = appendJSONString(b, message)
	b = append(b, `},`...)
	return appendTrackFields(b, t)
}

// appendTrackResponse appends body's JSON (with json.Encoder's newline).
func appendTrackResponse(b []byte, t *trackResponse) []byte {
	return appendTrackFields(append(b, '{'), t)
}

// appendTrackFields appends t's fields and closes the object.
func appendTrackFields(b []byte, t *trackResponse) []byte {
	b = append(b, `"allowed":`...)
	b = strconv.AppendBool(b, t.Allowed)
	if t.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	b = append(b, `,"account_id":`...)
	b = appendJSONString(b, t.AccountID)
	b = append(b, `,"plan":`...)
	b = appendJSONString(b, t.Plan)
	b = append(b, `,"limit":`...)
	b = appendInt64Ptr(b, t.Limit)
	b = append(b, `,"remaining":`...)
	b = appendInt64Ptr(b, t.Remaining)
	b = append(b, `,"reset":`...)
	b = strconv.AppendInt(b, t.Reset, 10)
	b = append(b, `,"reset_at":`...)
	b = appendJSONString(b, t.ResetAt)
	b = append(b, `,"overage":`...)
	b = strconv.AppendBool(b, t.Overage)
	if t.EventID != "" {
		b = append(b, `,"event_id":`...)
		b = appendJSONString(b, t.EventID)
	}
	return append(b, "}\n"...)
}

func appendInt64Ptr(b []byte, v *int64) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *v, 10)
}

// appendJSONString quotes s as encoding/json does (HTML-safe): plain
// printable ASCII directly, anything it would escape through it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
