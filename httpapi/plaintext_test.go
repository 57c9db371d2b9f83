package httpapi_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
)

// TestHTTPServer_PlainTextAnswers pins down which answers stay plain text
// because net/http writes them before any handler runs (the README lists
// them): a request it cannot parse never reaches meterd's JSON errors.
// Headers over the API's own 32 KiB limit but under net/http's 64 KiB are
// still answered in JSON.
func TestHTTPServer_PlainTextAnswers(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewHTTPServer(ln.Addr().String(), s.API.Handler(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	pad := func(n int) string { return "X-Pad: " + strings.Repeat("p", n) + "\r\n" }
	cases := []struct {
		name, raw   string
		status      int
		contentType string
	}{
		{"headers of 40 KiB (meterd)", "GET /healthz HTTP/1.1\r\nHost: x\r\n" + pad(40<<10) + "\r\n", 431, "application/json"},
		{"headers of 100 KiB (net/http)", "GET /healthz HTTP/1.1\r\nHost: x\r\n" + pad(100<<10) + "\r\n", 431, "text/plain"},
		{"malformed request line", "GARBAGE\r\n\r\n", 400, "text/plain"},
		{"no Host header", "GET /healthz HTTP/1.1\r\n\r\n", 400, "text/plain"},
		{"bad header name", "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n", 400, "text/plain"},
		{"unknown transfer encoding", "POST /v1/track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: zip\r\n\r\n", 501, "text/plain"},
		{"unknown expectation", "POST /v1/track HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 2\r\n\r\n{}", 417, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			go io.WriteString(c, tc.raw) // net/http may answer before it has read it all
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) {
				t.Fatalf("status %d, Content-Type %q; want %d, %q", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.contentType)
			}
		})
	}
}
