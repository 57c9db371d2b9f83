package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/meterd/meterd/meter"
)

// Rate-limit fields beyond the X-RateLimit-* trio of setRateLimitHeaders.
//
// RateLimit-Policy and RateLimit follow draft-ietf-httpapi-ratelimit-headers
// (-08 and later): one policy named after the plan, its quota q per window
// w (the period's length in seconds), and the remaining calls r with the
// seconds t until the period resets:
//
//	RateLimit-Policy: "free";q=1000;w=2678400
//	RateLimit: "free";r=150;t=1814400
//
// Unlimited plans carry neither, as they carry no X-RateLimit-Limit.
const (
	HeaderRateLimitPolicy = "RateLimit-Policy"
	HeaderRateLimit       = "RateLimit"
	// HeaderQuotaWarning is set once an account has used WarningPercent
	// of a limited plan's calls in the period, on allowed and denied
	// answers alike, e.g. "85% of 1000 calls used this period". The value
	// starts with the whole percentage used, so a client can parse it;
	// past a soft limit it exceeds 100.
	HeaderQuotaWarning = "X-RateLimit-Warning"
	// WarningPercent is the share of the limit at which the warning starts.
	WarningPercent = 80
)

// setQuotaHeaders writes every rate-limit field of a decided call: the
// X-RateLimit-* trio and Retry-After (setRateLimitHeaders), the IETF
// draft fields and the usage warning. Every way into the meter uses it,
// so a call gets the same headers whichever way it came.
func setQuotaHeaders(h http.Header, res meter.Result, period meter.Period, now time.Time) {
	var arr [320]byte
	hb := headerBatch{buf: arr[:0]}
	setRateLimitHeaders(&hb, res, now)
	if !res.Unlimited && res.Limit > 0 {
		window := int64(period.End.Sub(period.Start) / time.Second)
		hb.buf = appendSFString(hb.buf, res.Plan)
		hb.buf = append(hb.buf, ";q="...)
		hb.buf = strconv.AppendInt(hb.buf, res.Limit, 10)
		hb.buf = append(hb.buf, ";w="...)
		hb.buf = strconv.AppendInt(hb.buf, window, 10)
		hb.end(hdrPolicy)
		if !inOverage(res) { // see setRateLimitHeaders: r=0 means "wait" to draft-aware clients
			hb.buf = appendSFString(hb.buf, res.Plan)
			hb.buf = append(hb.buf, ";r="...)
			hb.buf = strconv.AppendInt(hb.buf, res.Remaining, 10)
			hb.buf = append(hb.buf, ";t="...)
			hb.buf = strconv.AppendInt(hb.buf, secondsUntil(res.Reset, now), 10)
			hb.end(hdrRateLimit)
		}
		if pct := res.Calls * 100 / res.Limit; pct >= WarningPercent {
			hb.buf = strconv.AppendInt(hb.buf, pct, 10)
			hb.buf = append(hb.buf, "% of "...)
			hb.buf = strconv.AppendInt(hb.buf, res.Limit, 10)
			hb.buf = append(hb.buf, " calls used this period"...)
			hb.end(hdrWarning)
		}
	}
	hb.setOn(h)
}

// The rate-limit header names in canonical form, so headerBatch can
// index a Header with them directly.
var (
	hdrLimit      = http.CanonicalHeaderKey("X-RateLimit-Limit")
	hdrRemaining  = http.CanonicalHeaderKey("X-RateLimit-Remaining")
	hdrReset      = http.CanonicalHeaderKey("X-RateLimit-Reset")
	hdrRetryAfter = http.CanonicalHeaderKey("Retry-After")
	hdrPolicy     = http.CanonicalHeaderKey(HeaderRateLimitPolicy)
	hdrRateLimit  = http.CanonicalHeaderKey(HeaderRateLimit)
	hdrWarning    = http.CanonicalHeaderKey(HeaderQuotaWarning)
)

// headerBatch gathers a response's computed header fields and sets them
// with two allocations (one string holding every value, one slice of
// them) where Header.Set costs two or three per field. Keys must be
// canonical.
type headerBatch struct {
	buf  []byte
	keys [8]string
	ends [8]int
	n    int
}

// end closes the value appended to buf since the previous end as key's.
func (b *headerBatch) end(key string) {
	b.keys[b.n], b.ends[b.n] = key, len(b.buf)
	b.n++
}

// setOn sets every gathered field on h, replacing earlier values as
// Header.Set does.
func (b *headerBatch) setOn(h http.Header) {
	all := string(b.buf)
	vals := make([]string, b.n)
	start := 0
	for i := range b.n {
		vals[i] = all[start:b.ends[i]]
		h[b.keys[i]] = vals[i : i+1 : i+1]
		start = b.ends[i]
	}
}

// secondsUntil is the whole seconds from now to t, rounded up, never
// negative.
func secondsUntil(t, now time.Time) int64 {
	return max(int64(math.Ceil(t.Sub(now).Seconds())), 0)
}

// appendSFString appends s as a Structured Field String (RFC 8941
// §3.3.3): quoted, with backslash and quote escaped; other characters
// outside printable ASCII cannot appear in one and are replaced.
func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '_')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
