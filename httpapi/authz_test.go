package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/meterd/meterd/meter"
)

// Each gateway describes the original request its own way; all meter the
// same call.
func TestAuthz_Gateways(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_gw", "free")
	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		want   string // "METHOD /template"
	}{
		{"Traefik", "GET", "/v1/authz", map[string]string{"X-Forwarded-Method": "POST",
			"X-Forwarded-Uri": "/v1/orders/1234?expand=items", "X-API-Key": key}, "POST /v1/orders/{id}"},
		{"Nginx", "GET", "/v1/authz", map[string]string{"X-Original-Method": "DELETE",
			"X-Original-URI": "/v1/orders/55", "Authorization": "Bearer " + key}, "DELETE /v1/orders/{id}"},
		{"Envoy", "PUT", "/v1/authz/v1/orders/77?dry=1", map[string]string{"Authorization": "Bearer " + key}, "PUT /v1/orders/{id}"},
		{"EnvoyRoot", "HEAD", "/v1/authz/", map[string]string{"X-API-Key": key}, "HEAD /"},
		{"KeyInOriginalQuery", "GET", "/v1/authz", map[string]string{"X-Forwarded-Method": "GET",
			"X-Forwarded-Uri": "/v1/search?q=x&api_key=" + key}, "GET /v1/search"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := gwMustDo(t, s.Client, tt.method, s.HTTP.URL+tt.path, tt.header, "")
			if resp.Status != http.StatusOK {
				t.Fatalf("status %d %s, want 200", resp.Status, resp.Body)
			}
			gwWantHeaders(t, resp.Header, map[string]string{"X-Meter-Account": "acct_gw", "X-Meter-Plan": "free",
				"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": fmt.Sprint(999 - i),
				"RateLimit-Policy": `"free";q=1000;w=2678400`, "RateLimit": fmt.Sprintf(`"free";r=%d;t=%s`, 999-i, gwRetry)})
			evs := s.events("acct_gw")
			if len(evs) != i+1 {
				t.Fatalf("%d events, want %d", len(evs), i+1)
			}
			ev := evs[i]
			if got := ev.Method + " " + ev.Endpoint; got != tt.want || ev.Status != 0 || ev.Decision != meter.Allowed {
				t.Errorf("recorded %s status %d %v, want %s status 0 allowed", got, ev.Status, ev.Decision, tt.want)
			}
		})
	}
}

func TestAuthz_Denials(t *testing.T) {
	t.Parallel()
	s := mustGWServer(t, gwOptions{plans: "plans:\n  free: {limit: 2, hard: true}\n"})
	key := s.mustAccountKey("acct_deny", "free")
	fwd := func(k string) map[string]string {
		return map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/x", "X-API-Key": k}
	}
	for range 2 {
		if resp := gwMustDo(t, s.Client, "GET", s.HTTP.URL+"/v1/authz", fwd(key), ""); resp.Status != 200 {
			t.Fatalf("status %d, want 200", resp.Status)
		}
	}
	tests := []struct {
		name, path string
		header     map[string]string
		status     int
		code       string
		denied     string // X-Meter-Denied
	}{
		{"NoKey", "/v1/authz", fwd(""), 401, "unauthorized", ""},
		{"UnknownKey", "/v1/authz", fwd("mk_this-key-was-never-issued"), 401, "invalid_api_key", ""},
		{"NoOriginalRequest", "/v1/authz", map[string]string{"X-API-Key": key}, 400, "invalid_request", ""},
		{"Quota", "/v1/authz", fwd(key), 429, "quota_exceeded", "quota"},
		{"QuotaForNginx", "/v1/authz?deny_status=403", fwd(key), 403, "quota_exceeded", "quota"},
		{"EnvoyQueryIsTheClients", "/v1/authz/v1/x?deny_status=403", map[string]string{"X-API-Key": key}, 429, "quota_exceeded", "quota"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := gwMustDo(t, s.Client, "GET", s.HTTP.URL+tt.path, tt.header, "")
			if code := gwErrorCode(t, resp, tt.status); code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
			if got := resp.Header.Get("X-Meter-Denied"); got != tt.denied {
				t.Errorf("X-Meter-Denied %q, want %q", got, tt.denied)
			}
			if tt.denied != "" {
				gwWantHeaders(t, resp.Header, map[string]string{"Retry-After": gwRetry, "X-RateLimit-Remaining": "0",
					"X-RateLimit-Warning": "100% of 2 calls used this period"})
			}
		})
	}
	if q := s.quota("acct_deny"); q.Calls != 2 || q.Denied != 3 {
		t.Errorf("quota: %d calls %d denied, want 2 and 3", q.Calls, q.Denied)
	}
}

// With a service token, the gateway proves itself in X-Meter-Service-Token
// (the Authorization header is the client's).
func TestAuthz_ServiceToken(t *testing.T) {
	t.Parallel()
	const token = "mst_gateway-service-token-3b9e"
	s := mustGWServer(t, gwOptions{serviceToken: token})
	key := s.mustAccountKey("acct_svc", "pro")
	orig := map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/v1/x"}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range orig {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"NoToken", with(map[string]string{"Authorization": "Bearer " + key}), 401},
		{"WrongToken", with(map[string]string{"Authorization": "Bearer " + key, "X-Meter-Service-Token": "nope"}), 401},
		{"TokenHeader", with(map[string]string{"Authorization": "Bearer " + key, "X-Meter-Service-Token": token}), 200},
		{"TokenAsBearer", with(map[string]string{"Authorization": "Bearer " + token, "X-API-Key": key}), 200},
		{"TokenOnlyIsNoKey", with(map[string]string{"Authorization": "Bearer " + token}), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := gwMustDo(t, s.Client, "GET", s.HTTP.URL+"/v1/authz", tt.header, "")
			if resp.Status != tt.status {
				t.Errorf("status %d %s, want %d", resp.Status, resp.Body, tt.status)
			}
		})
	}
	if q := s.quota("acct_svc"); q.Calls != 2 {
		t.Errorf("calls %d, want 2", q.Calls)
	}
	if strings.Contains(s.Logs.String(), key) || strings.Contains(s.Logs.String(), token) {
		t.Error("a key or token appears in the logs")
	}
}
