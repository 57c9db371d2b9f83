package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAPI(t *testing.T) {
	srv := httptest.NewServer(newAPI())
	t.Cleanup(srv.Close)
	tests := []struct {
		method, path, body string
		header             map[string]string
		status             int
		contains           string
	}{
		{"GET", "/healthz", "", nil, 200, "ok"},
		{"GET", "/v1/things", "", map[string]string{"X-Meter-Account": "acct_1"}, 200, `"account":"acct_1"`},
		{"GET", "/v1/things/7", "", nil, 200, `"id":"7"`},
		{"GET", "/v1/things/seven", "", nil, 404, "no such thing"},
		{"POST", "/v1/things", `{"name":"new"}`, nil, 201, `"name":"new"`},
		{"POST", "/v1/things", `{}`, nil, 400, "want"},
		{"GET", "/v1/slow?ms=1", "", nil, 200, `"slept_ms":1`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.contains) {
				t.Errorf("%d %s, want %d containing %q", resp.StatusCode, b, tt.status, tt.contains)
			}
		})
	}
}

func TestAPI_StreamAndMirror(t *testing.T) {
	srv := httptest.NewServer(newAPI())
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL+"/v1/stream?mb=2", nil)
	req.Header.Set("X-RateLimit-Remaining", "41")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != 2<<20 {
		t.Fatalf("streamed %d bytes (%v), want 2 MiB", n, err)
	}
	if got := resp.Header.Get("X-RateLimit-Remaining"); got != "41" {
		t.Errorf("mirrored X-RateLimit-Remaining %q, want 41", got)
	}
}
