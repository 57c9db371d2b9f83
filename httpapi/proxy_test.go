package httpapi_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/meter"
)

// gwReset and gwRetry are the free plan's reset (April 1st) and the
// seconds to it from the frozen clock.
var (
	gwReset = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	gwRetry = fmt.Sprint(int64(gwReset.Sub(gwNow) / time.Second))
)

func TestProxy_FreeKeyGetsExactly1000(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_free", "free")
	up := mustUpstream(t, nil)
	px := s.mustProxy(up.URL)
	hdr := map[string]string{"X-API-Key": key}

	codes := gwDoConcurrently(s.Client, px.URL+"/v1/things/1", hdr, 1000, 16)
	if codes[http.StatusOK] != 1000 || len(codes) != 1 {
		t.Fatalf("first 1000 calls: status counts %v, want 1000 x 200", codes)
	}
	if n := up.hits.Load(); n != 1000 {
		t.Fatalf("upstream saw %d requests, want 1000", n)
	}
	for range 3 {
		resp := gwMustDo(t, s.Client, http.MethodGet, px.URL+"/v1/things/1", hdr, "")
		if code := gwErrorCode(t, resp, http.StatusTooManyRequests); code != "quota_exceeded" {
			t.Errorf("code %q, want quota_exceeded", code)
		}
		if !bytes.Contains(resp.Body, []byte("Upgrade to Pro for more calls")) {
			t.Errorf("429 body %s lacks the upgrade message", resp.Body)
		}
		gwWantHeaders(t, resp.Header, map[string]string{"Retry-After": gwRetry, "X-RateLimit-Limit": "1000",
			"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": fmt.Sprint(gwReset.Unix()),
			"RateLimit": `"free";r=0;t=` + gwRetry, "X-RateLimit-Warning": "100% of 1000 calls used this period"})
	}
	if n := up.hits.Load(); n != 1000 {
		t.Errorf("upstream saw %d requests, want still 1000: denied calls must not reach it", n)
	}
	if q := s.quota("acct_free"); q.Calls != 1000 || q.Denied != 3 {
		t.Errorf("quota: %d calls %d denied, want 1000 and 3", q.Calls, q.Denied)
	}
}

// The upstream sends 64 KiB, then waits until the client has those bytes
// before it writes the other 10 MiB: a proxy that buffered the response
// whole would never deliver them.
func TestProxy_StreamsTenMegabytes(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_stream", "pro")
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	const chunks = 160                                      // 10 MiB
	release := make(chan struct{})
	up := mustUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(chunk)
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		for range chunks - 1 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	px := s.mustProxy(up.URL)
	req, _ := http.NewRequest(http.MethodGet, px.URL+"/v1/export", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-RateLimit-Remaining") != "99999" {
		t.Fatalf("status %d remaining %q, want 200 and 99999", resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
	}
	first := make(chan error, 1)
	buf := make([]byte, len(chunk))
	go func() { _, err := io.ReadFull(resp.Body, buf); first <- err }()
	select {
	case err := <-first:
		if err != nil || !bytes.Equal(buf, chunk) {
			t.Fatalf("first chunk: %v", err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the first bytes did not arrive while the upstream was still writing: the proxy buffers")
	}
	close(release)
	total := len(chunk)
	for {
		n, err := io.ReadFull(resp.Body, buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil || !bytes.Equal(buf, chunk) {
			t.Fatalf("after %d bytes: %v", total, err)
		}
	}
	if total != chunks*len(chunk) {
		t.Fatalf("received %d bytes, want %d", total, chunks*len(chunk))
	}
	if evs := s.events("acct_stream"); len(evs) != 1 || evs[0].Status != http.StatusOK {
		t.Errorf("events %+v, want one 200", evs)
	}
}

func TestProxy_RecordsStatusAndLatency(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_lat", "pro")
	up := mustUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/orders":
			time.Sleep(25 * time.Millisecond)
			w.WriteHeader(http.StatusCreated)
		case "/v1/orders/77":
			http.NotFound(w, r)
		default:
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	})
	px := s.mustProxy(up.URL)
	hdr := map[string]string{"X-API-Key": key}
	for _, c := range []struct {
		method, path string
		status       int
	}{{"POST", "/v1/orders", 201}, {"POST", "/v1/orders", 201}, {"GET", "/v1/orders/77", 404}, {"DELETE", "/v1/boom", 500}} {
		if resp := gwMustDo(t, s.Client, c.method, px.URL+c.path, hdr, "{}"); resp.Status != c.status {
			t.Fatalf("%s %s: %d, want the upstream's %d", c.method, c.path, resp.Status, c.status)
		}
	}
	evs := s.events("acct_lat")
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4", len(evs))
	}
	for i, want := range []int{201, 201, 404, 500} {
		if evs[i].Status != want {
			t.Errorf("event %d status %d, want %d", i, evs[i].Status, want)
		}
	}
	if evs[0].LatencyMicros < 25000 || evs[0].LatencyMicros > 5_000_000 {
		t.Errorf("latency %d us, want the upstream's 25 ms or a little more", evs[0].LatencyMicros)
	}
	rows := s.endpoints("acct_lat")
	if r := rows["POST /v1/orders"]; r.APICalls != 2 || r.AvgLatencyMS < 25 {
		t.Errorf("POST /v1/orders row %+v, want 2 calls averaging >= 25 ms", r)
	}
	if r := rows["GET /v1/orders/{id}"]; r.APICalls != 1 || r.ClientErrors != 1 {
		t.Errorf("GET /v1/orders/{id} row %+v, want 1 call, 1 client error", r)
	}
	if r := rows["DELETE /v1/boom"]; r.APICalls != 1 || r.Errors != 1 {
		t.Errorf("DELETE /v1/boom row %+v, want 1 call, 1 error", r)
	}
}

// Upstream down: 502 JSON with the rate-limit headers, recorded as a call
// with status 502 (it counts, and shows among the endpoint's errors).
func TestProxy_UpstreamDown(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_down", "free")
	up := mustUpstream(t, nil)
	down := up.URL
	up.Close()
	px := s.mustProxy(down)
	resp := gwMustDo(t, s.Client, http.MethodGet, px.URL+"/v1/things", map[string]string{"X-API-Key": key}, "")
	if code := gwErrorCode(t, resp, http.StatusBadGateway); code != "bad_gateway" {
		t.Errorf("code %q, want bad_gateway", code)
	}
	gwWantHeaders(t, resp.Header, map[string]string{"X-RateLimit-Remaining": "999", "X-RateLimit-Limit": "1000"})
	evs := s.events("acct_down")
	if len(evs) != 1 || evs[0].Status != http.StatusBadGateway || evs[0].Decision != meter.Allowed {
		t.Fatalf("events %+v, want one allowed call with status 502", evs)
	}
	if r := s.endpoints("acct_down")["GET /v1/things"]; r.APICalls != 1 || r.Errors != 1 {
		t.Errorf("endpoint row %+v, want 1 call, 1 error", r)
	}
}

func TestProxy_KeySources(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_keys", "pro")
	up := mustUpstream(t, nil)
	px := s.mustProxy(up.URL, func(c *httpapi.ProxyConfig) { c.KeyHeader, c.KeyQuery = "X-Customer-Key", "key" })
	plain := s.mustProxy(up.URL)
	tests := []struct {
		name   string
		base   string
		path   string
		header map[string]string
		status int
		code   string
	}{
		{"NoKey", px.URL, "/v1/a", nil, 401, "unauthorized"},
		{"UnknownKey", px.URL, "/v1/a", map[string]string{"X-API-Key": "mk_not-issued-by-meterd"}, 401, "invalid_api_key"},
		{"XAPIKey", px.URL, "/v1/a", map[string]string{"X-API-Key": key}, 200, ""},
		{"Bearer", px.URL, "/v1/a", map[string]string{"Authorization": "Bearer " + key}, 200, ""},
		{"CustomHeader", px.URL, "/v1/a", map[string]string{"X-Customer-Key": key}, 200, ""},
		{"Query", px.URL, "/v1/a?key=" + key, nil, 200, ""},
		{"QueryNotConfigured", plain.URL, "/v1/a?key=" + key, nil, 401, "unauthorized"},
	}
	allowed := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := gwMustDo(t, s.Client, http.MethodGet, tt.base+tt.path, tt.header, "")
			if tt.status == 200 {
				allowed++
				if resp.Status != 200 || string(resp.Body) != "ok from upstream" {
					t.Fatalf("%d %s, want the upstream's 200", resp.Status, resp.Body)
				}
				return
			}
			if code := gwErrorCode(t, resp, tt.status); code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := up.hits.Load(); n != int64(allowed) {
		t.Errorf("upstream saw %d requests, want only the %d authenticated", n, allowed)
	}
	if strings.Contains(s.Logs.String(), key) {
		t.Error("the API key appears in the logs")
	}
}

func TestProxy_ForwardsRequest(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_fwd", "pro")
	up := mustUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Upstream", "yes")
		w.Write(b)
	})
	for _, strip := range []bool{false, true} {
		t.Run(fmt.Sprint("strip=", strip), func(t *testing.T) {
			px := s.mustProxy(up.URL+"/base", func(c *httpapi.ProxyConfig) { c.KeyQuery, c.StripKey = "api_key", strip })
			resp := gwMustDo(t, s.Client, http.MethodPost, px.URL+"/v1/echo?x=1&y=2",
				map[string]string{"Authorization": "Bearer " + key, "X-Forwarded-For": "203.0.113.9",
					"X-Meter-Account": "spoofed", "Host": "api.example.com"}, `{"hello":"world"}`)
			if resp.Status != 200 || string(resp.Body) != `{"hello":"world"}` || resp.Header.Get("X-Upstream") != "yes" {
				t.Fatalf("answer %d %q %v, want the upstream's echo", resp.Status, resp.Body, resp.Header)
			}
			in := up.Last()
			if in.URL.Path != "/base/v1/echo" || in.URL.Query().Get("x") != "1" || in.URL.Query().Get("y") != "2" {
				t.Errorf("upstream URL %s, want /base/v1/echo?x=1&y=2", in.URL)
			}
			gwWantHeaders(t, in.Header, map[string]string{"X-Forwarded-For": "203.0.113.9, 127.0.0.1",
				"X-Forwarded-Host": "api.example.com", "X-Forwarded-Proto": "http",
				"X-Meter-Account": "acct_fwd", "X-Meter-Plan": "pro"})
			if got, want := in.Header.Get("Authorization") != "", !strip; got != want {
				t.Errorf("Authorization forwarded: %v, want %v", got, want)
			}
		})
	}
	t.Run("StripQueryKey", func(t *testing.T) {
		px := s.mustProxy(up.URL, func(c *httpapi.ProxyConfig) { c.KeyQuery, c.StripKey = "api_key", true })
		resp := gwMustDo(t, s.Client, http.MethodGet, px.URL+"/v1/q?api_key="+key+"&page=2", nil, "")
		if resp.Status != 200 {
			t.Fatalf("status %d: %s", resp.Status, resp.Body)
		}
		if q := up.Last().URL.Query(); q.Has("api_key") || q.Get("page") != "2" {
			t.Errorf("upstream query %v, want page=2 without api_key", q)
		}
	})
}

// A protocol switch passes through, carries the headers, and counts once.
func TestProxy_Upgrade(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_ws", "free")
	up := mustUpstream(t, echoUpgrade)
	px := s.mustProxy(up.URL)
	checkUpgrade(t, px.Listener.Addr().String(), key, "999")
	evs := s.events("acct_ws")
	if len(evs) != 1 || evs[0].Status != http.StatusSwitchingProtocols || evs[0].Endpoint != "/v1/socket" {
		t.Fatalf("events %+v, want one call with status 101", evs)
	}
}

// echoUpgrade switches to the "echo" protocol and echoes bytes back.
func echoUpgrade(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "echo" {
		http.Error(w, "upgrade required", http.StatusUpgradeRequired)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(gwTimeout))
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	brw.Flush()
	io.Copy(conn, brw)
}

// checkUpgrade switches a raw connection to addr to the echo protocol and
// checks bytes flow both ways, and that the 101 says remaining calls are
// left (unless remaining is "").
func checkUpgrade(tb testing.TB, addr, key, remaining string) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, gwTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(gwTimeout))
	fmt.Fprintf(conn, "GET /v1/socket HTTP/1.1\r\nHost: meterd\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-API-Key: %s\r\n\r\n", key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("answer %d, want 101", resp.StatusCode)
	}
	if got := resp.Header.Get("X-RateLimit-Remaining"); remaining != "" && got != remaining {
		tb.Errorf("101 says %q calls remain, want %s", got, remaining)
	}
	for _, msg := range []string{"ping\n", "pong\n"} {
		io.WriteString(conn, msg)
		line, err := br.ReadString('\n')
		if err != nil || line != msg {
			tb.Fatalf("echo of %q: %q %v", msg, line, err)
		}
	}
}

func TestNewProxy_Config(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	for _, up := range []string{"", "127.0.0.1:3000", "ftp://x", "http://", "://bad"} {
		if _, err := httpapi.NewProxy(httpapi.ProxyConfig{Meter: s.Meter, Upstream: up}); err == nil {
			t.Errorf("upstream %q accepted", up)
		}
	}
	if _, err := httpapi.NewProxy(httpapi.ProxyConfig{Upstream: "http://127.0.0.1:3000"}); err == nil {
		t.Error("no meter accepted")
	}
}
