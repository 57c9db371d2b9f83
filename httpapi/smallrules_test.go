package httpapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The 429 message names an upgrade only if a configured plan offers more
// calls: free customers are sent to Pro, a hard plan above Pro to
// Enterprise, never "down" to Pro.
func TestTrack_QuotaMessageNamesARealUpgrade(t *testing.T) {
	t.Parallel()
	plans := mustParsePlans(t, "plans:\n  scale: {limit: 3, hard: true, monthly_price_cents: 9900}\n  free: {limit: 2, hard: true}\n  pro: {limit: 1, overage_micros: 1000}\n")
	s := MustOpenServer(t, WithPlans(plans))
	for _, tc := range []struct{ plan, want, not string }{
		{"free", "Upgrade to Scale for more calls.", "Pro"},
		{"scale", "Upgrade to Enterprise for more calls.", "Pro"},
	} {
		key := s.MustAccountWithKey(t, "acct_"+tc.plan, tc.plan)
		var e apiError
		for range 4 {
			if resp := s.Track(t, key); resp.Status == http.StatusTooManyRequests {
				e = mustErrorBody(t, resp, http.StatusTooManyRequests, "quota_exceeded")
				break
			}
		}
		if !strings.Contains(e.Message, tc.want) || strings.Contains(e.Message, tc.not) {
			t.Errorf("%s: message %q, want %q", tc.plan, e.Message, tc.want)
		}
	}
}

// An anchor given with a fraction of a second is stored to the second, so
// X-RateLimit-Reset is never before the real reset.
func TestTrack_SubSecondAnchorReset(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	resp := s.Admin(t, http.MethodPost, "/api/admin/accounts",
		`{"id":"acct_anch","name":"A","plan":"free","billing_anchor":"2026-01-15T10:20:30.900Z"}`)
	if resp.Status != http.StatusCreated || !strings.Contains(string(resp.Body), `"billing_anchor":"2026-01-15T10:20:30Z"`) {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	key := s.MustIssueKey(t, "acct_anch").Key
	tr := s.Track(t, key)
	reset, err := strconv.ParseInt(tr.Header.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	r := decodeTrack(t, tr, http.StatusOK)
	if real := r.Reset; reset < real || time.Unix(reset, 0).Second() != 30 {
		t.Fatalf("X-RateLimit-Reset %d, real reset %d", reset, real)
	}
}
