package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meterd/meterd/export/webhook"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

func webhookAPI(t *testing.T) func(method, path, body string) (int, map[string]any) {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	m, err := meter.New(context.Background(), meter.Config{Store: l})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{Meter: m, AdminToken: testAdminToken, Webhooks: webhook.NewAdmin(l, nil, true, 0)})
	hs := httptest.NewServer(api.Handler())
	t.Cleanup(hs.Close)
	return func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
}

func TestWebhooks_AdminAPI(t *testing.T) {
	call := webhookAPI(t)
	code, ep := call("POST", "/api/admin/webhooks", `{"url":"https://hooks.example.com/meterd","event_types":["usage.threshold_reached"]}`)
	if code != 201 || !strings.HasPrefix(ep["secret"].(string), "whsec_") || ep["enabled"] != true {
		t.Fatalf("create = %d %v", code, ep)
	}
	id := ep["id"].(string)
	if code, got := call("GET", "/api/admin/webhooks/"+id, ""); code != 200 || got["secret"] != nil || got["url"] != "https://hooks.example.com/meterd" {
		t.Fatalf("get = %d %v (the secret must not be shown again)", code, got)
	}
	if code, got := call("PATCH", "/api/admin/webhooks/"+id, `{"enabled":false,"rotate_secret":true}`); code != 200 || got["enabled"] != false || got["secret"] == ep["secret"] || got["secret"] == nil {
		t.Fatalf("patch = %d %v", code, got)
	}
	if code, got := call("GET", "/api/admin/webhooks", ""); code != 200 || len(got["webhooks"].([]any)) != 1 {
		t.Fatalf("list = %d %v", code, got)
	}
	if code, got := call("GET", "/api/admin/webhooks/"+id+"/deliveries?status=dead", ""); code != 200 || len(got["deliveries"].([]any)) != 0 {
		t.Fatalf("deliveries = %d %v", code, got)
	}
	if code, got := call("POST", "/api/admin/webhooks/"+id+"/replay?since=2026-01-01T00:00:00Z", ""); code != 200 || got["replayed"] != 0.0 {
		t.Fatalf("replay = %d %v", code, got)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/api/admin/webhooks", `{"url":"ftp://x.example.com/"}`, 400, "invalid_request"},
		{"POST", "/api/admin/webhooks", `{"url":"http://127.0.0.1:8080/"}`, 400, "invalid_request"},
		{"POST", "/api/admin/webhooks", `{"url":"https://x.example.com/","event_types":["nope"]}`, 400, "invalid_request"},
		{"POST", "/api/admin/webhooks", `{"url":"https://x.example.com/","secret":"plain"}`, 400, "invalid_request"},
		{"POST", "/api/admin/webhooks/" + id + "/replay", ``, 400, "invalid_request"},
		{"GET", "/api/admin/webhooks/wh_nope", ``, 404, "webhook_not_found"},
		{"POST", "/api/admin/webhooks/wh_nope/replay?since=2026-01-01T00:00:00Z", ``, 404, "webhook_not_found"},
		{"DELETE", "/api/admin/webhooks/" + id, ``, 204, ""},
		{"DELETE", "/api/admin/webhooks/" + id, ``, 404, "webhook_not_found"},
	} {
		code, got := call(c.method, c.path, c.body)
		if code != c.status || (c.code != "" && got["error"].(map[string]any)["code"] != c.code) {
			t.Errorf("%s %s %s = %d %v, want %d %s", c.method, c.path, c.body, code, got, c.status, c.code)
		}
	}
}
