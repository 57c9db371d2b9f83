package httpapi_test

import (
	"net/http"
	"testing"
)

// TestServer_MethodNotAllowedAllow checks a 405 names the methods the
// route does serve, as RFC 9110 requires.
func TestServer_MethodNotAllowedAllow(t *testing.T) {
	s := MustOpenServer(t)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, "/v1/track", "POST"},
		{http.MethodDelete, "/api/admin/accounts/acme", "GET, PATCH"},
		{http.MethodPost, "/healthz", "GET, HEAD"},
	} {
		resp := s.Do(t, request{Method: tc.method, Path: tc.path})
		if resp.Status != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow=%q, want 405 Allow=%q", tc.method, tc.path, resp.Status, resp.Header.Get("Allow"), tc.allow)
		}
	}
}
