package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestServer_MethodNotAllowedAllow checks a 405 names the methods the
// route does serve, as RFC 9110 requires.
func TestServer_MethodNotAllowedAllow(t *testing.T) {
	s := MustOpenServer(t)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, "/v1/track", "POST"},
		{http.MethodPut, "/api/admin/accounts/acme", "DELETE, GET, PATCH"},
		{http.MethodPost, "/healthz", "GET, HEAD"},
	} {
		resp := s.Do(t, request{Method: tc.method, Path: tc.path})
		if resp.Status != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow=%q, want 405 Allow=%q", tc.method, tc.path, resp.Status, resp.Header.Get("Allow"), tc.allow)
		}
	}
}

// TestServer_RequestID checks every answer carries a request id, that a
// sane client id is kept and an unsafe one replaced.
func TestServer_RequestID(t *testing.T) {
	s := MustOpenServer(t)
	for _, tc := range []struct{ sent, want string }{
		{"", ""},
		{"abc-123_X.y", "abc-123_X.y"},
		{"bad id\r\nInjected: 1", ""},
		{strings.Repeat("a", 65), ""},
	} {
		req := request{Method: http.MethodGet, Path: "/healthz"}
		if tc.sent != "" {
			req.Header = map[string]string{"X-Request-Id": tc.sent}
		}
		resp, err := s.Send(req)
		if err != nil {
			// net/http refuses to send a header with CR/LF: nothing to test.
			continue
		}
		got := resp.Header.Get("X-Request-Id")
		switch {
		case tc.want != "" && got != tc.want:
			t.Errorf("sent %q: got id %q, want it kept", tc.sent, got)
		case tc.want == "" && (len(got) != 16 || got == tc.sent):
			t.Errorf("sent %q: got id %q, want a fresh 16-hex id", tc.sent, got)
		}
	}
}
