package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"strings"
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
	setRateLimitHeaders(h, res, now)
	if res.Unlimited || res.Limit <= 0 {
		return
	}
	name := sfString(res.Plan)
	window := int64(period.End.Sub(period.Start) / time.Second)
	h.Set(HeaderRateLimitPolicy, name+";q="+strconv.FormatInt(res.Limit, 10)+";w="+strconv.FormatInt(window, 10))
	if !inOverage(res) { // see setRateLimitHeaders: r=0 means "wait" to draft-aware clients
		h.Set(HeaderRateLimit, name+";r="+strconv.FormatInt(res.Remaining, 10)+";t="+strconv.FormatInt(secondsUntil(res.Reset, now), 10))
	}
	if pct := res.Calls * 100 / res.Limit; pct >= WarningPercent {
		h.Set(HeaderQuotaWarning, strconv.FormatInt(pct, 10)+"% of "+strconv.FormatInt(res.Limit, 10)+" calls used this period")
	}
}

// secondsUntil is the whole seconds from now to t, rounded up, never
// negative.
func secondsUntil(t, now time.Time) int64 {
	return max(int64(math.Ceil(t.Sub(now).Seconds())), 0)
}

// sfString encodes s as a Structured Field String (RFC 8941 §3.3.3):
// quoted, with backslash and quote escaped; other characters outside
// printable ASCII cannot appear in one and are replaced.
func sfString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
