package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/meterd/meterd/meter"
)

// TestSecrets_NeverLeak runs a session with good and bad credentials and
// then searches everything meterd produced — logs, /metrics, response
// bodies and the bbolt file — for any API key or token it was given.
func TestSecrets_NeverLeak(t *testing.T) {
	t.Parallel()
	plans := mustParsePlans(t, "plans:\n  free: {limit: 2, hard: true}\n")
	s := MustOpenServer(t, WithPlans(plans))
	s.MustCreateAccount(t, "acct_s1", "free")
	s.MustCreateAccount(t, "acct_s2", "pro")
	k1, k2, k3 := s.MustIssueKey(t, "acct_s1"), s.MustIssueKey(t, "acct_s2"), s.MustIssueKey(t, "acct_s2")
	wrongKey := k1.Key[:len(k1.Key)-4] + "XXXX"
	wrongAdmin := []string{"mat_wrong-token-000000000000000000000", testAdminToken[:len(testAdminToken)-1],
		testAdminToken + "0", strings.ToUpper(testAdminToken)}
	secrets := append([]string{testAdminToken, k1.Key, k2.Key, k3.Key, wrongKey}, wrongAdmin...)

	var bodies []response
	send := func(r request) { bodies = append(bodies, s.Do(t, r)) }
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	for range 3 { // the third is a 429
		send(trackRequest(t, trackBody{APIKey: k1.Key, Endpoint: "/v1/users/7", Method: "GET"}))
	}
	send(request{Method: http.MethodPost, Path: "/v1/track", Body: `{"endpoint":"/v1/a","method":"GET"}`,
		Header: map[string]string{"X-API-Key": k2.Key}})
	send(trackRequest(t, trackBody{APIKey: wrongKey, Endpoint: "/v1/a", Method: "GET"}))
	send(request{Method: http.MethodPost, Path: "/v1/track", Body: `{"endpoint":"/v1/a","method":"GET"}`,
		Header: map[string]string{"X-API-Key": wrongKey}})
	send(request{Method: http.MethodGet, Path: "/api/usage/current", Header: bearer(k2.Key)})
	send(request{Method: http.MethodGet, Path: "/api/usage/current?account_id=acct_s1", Header: bearer(k3.Key)})
	send(request{Method: http.MethodGet, Path: "/api/usage/current", Header: bearer(wrongKey)})
	for _, tok := range wrongAdmin {
		send(request{Method: http.MethodPatch, Path: "/api/admin/accounts/acct_s1", Body: `{"plan":"pro"}`, Header: bearer(tok)})
		send(request{Method: http.MethodGet, Path: "/api/usage/current?account_id=acct_s1", Header: bearer(tok)})
	}
	send(request{Method: http.MethodGet, Path: "/api/admin/accounts/acct_s2", Header: bearer(testAdminToken)})
	send(request{Method: http.MethodDelete, Path: "/api/admin/keys/" + k3.ID, Header: bearer(testAdminToken)})
	send(trackRequest(t, trackBody{APIKey: k3.Key, Endpoint: "/v1/a", Method: "GET"}))

	metricsOut := s.Do(t, request{Method: http.MethodGet, Path: "/metrics"})
	if metricsOut.Status != http.StatusOK || !bytes.Contains(metricsOut.Body, []byte(`meterd_http_requests_total{code="401"`)) {
		t.Fatalf("/metrics: %d, want the request counters:\n%s", metricsOut.Status, truncate(metricsOut.Body, 500))
	}

	// With the ledger closed underneath, a history read fails inside the
	// server: an internal error, which is the one kind that gets logged.
	if err := s.Ledger.Close(); err != nil {
		t.Fatal(err)
	}
	send(request{Method: http.MethodGet, Path: "/api/usage/history", Header: bearer(k2.Key)})
	send(trackRequest(t, trackBody{APIKey: k2.Key, Endpoint: "/v1/a", Method: "GET"}))
	if last := bodies[len(bodies)-2]; last.Status != http.StatusInternalServerError {
		t.Errorf("history over a closed ledger: %d %s, want 500", last.Status, last.Body)
	}
	logs := s.Logs.String()
	if !strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("want the internal error logged, logs are:\n%s", logs)
	}

	file, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	// The file does hold each key's hash: proof we searched the right bytes.
	if !bytes.Contains(file, []byte(meter.HashKey(k1.Key).String())) {
		t.Errorf("ledger file lacks the hash of key %s", k1.ID)
	}
	for _, secret := range secrets {
		where := map[string][]byte{"logs": []byte(logs), "/metrics": metricsOut.Body, "ledger file": file}
		for i, b := range bodies {
			where[fmt.Sprintf("response #%d (status %d)", i, b.Status)] = b.Body
		}
		for name, data := range where {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s contains the secret %.14s…", name, secret)
			}
		}
	}
}
