package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meterd/meterd/client"
	"github.com/meterd/meterd/httpapi"
)

// The remote mode meters a service through a running meterd: allowed
// calls reach the service with the caller named and are counted; a bad
// key is meterd's 401 (one WWW-Authenticate); a suspended account is 403;
// with meterd gone the service fails closed (503, Retry-After), or open.
func TestRemoteMiddleware(t *testing.T) {
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_remote", "free")
	c, err := client.New(s.HTTP.URL, client.WithRetries(1, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var seenAccount string
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenAccount = r.Header.Get(httpapi.HeaderAccount)
		io.WriteString(w, "ok from service")
	})
	closed := httptest.NewServer(httpapi.RemoteMiddleware(c, false)(service))
	defer closed.Close()
	get := func(base, key string) *http.Response {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/v1/things/7", nil)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	resp := get(closed.URL, key)
	if resp.StatusCode != 200 || seenAccount != "acct_remote" || resp.Header.Get("X-RateLimit-Remaining") != "999" {
		t.Fatalf("allowed call: %d account %q headers %v", resp.StatusCode, seenAccount, resp.Header)
	}
	if q, _ := s.Meter.Quota("acct_remote"); q.Calls != 1 {
		t.Fatalf("calls = %d, want 1", q.Calls)
	}
	resp = get(closed.URL, "mk_wrong")
	if resp.StatusCode != 401 || len(resp.Header.Values("WWW-Authenticate")) != 1 {
		t.Fatalf("bad key: %d %v", resp.StatusCode, resp.Header.Values("WWW-Authenticate"))
	}
	if _, err := s.Meter.SuspendAccount(context.Background(), "acct_remote"); err != nil {
		t.Fatal(err)
	}
	if resp = get(closed.URL, key); resp.StatusCode != 403 {
		t.Fatalf("suspended: %d", resp.StatusCode)
	}

	s.HTTP.Close() // meterd stops
	if resp = get(closed.URL, key); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("meterd down, fail closed: %d %v", resp.StatusCode, resp.Header)
	}
	open := httptest.NewServer(httpapi.RemoteMiddleware(c, true)(service))
	defer open.Close()
	if resp = get(open.URL, key); resp.StatusCode != 200 {
		t.Fatalf("meterd down, fail open: %d", resp.StatusCode)
	}
}
