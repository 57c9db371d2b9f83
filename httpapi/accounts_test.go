package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// The account lifecycle over HTTP: paged listing, suspend (track,
// authz and events answered or counted as the docs say), resume, delete.
// The answers are also checked against httpapi/openapi.json.
func TestAdmin_AccountLifecycle(t *testing.T) {
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_b", "free")
	s.MustCreateAccount(t, "acct_a", "pro")
	s.MustCreateAccount(t, "acct_c", "free")

	t.Run("List", func(t *testing.T) {
		var page struct {
			Accounts []struct {
				ID   string `json:"id"`
				Keys []any  `json:"keys"`
			} `json:"accounts"`
			NextCursor string `json:"next_cursor"`
		}
		resp := s.Admin(t, http.MethodGet, "/api/admin/accounts?limit=2", "")
		json.Unmarshal(resp.Body, &page)
		if resp.Status != 200 || len(page.Accounts) != 2 || page.Accounts[0].ID != "acct_a" || page.NextCursor != "acct_b" {
			t.Fatalf("page 1: %d %s", resp.Status, resp.Body)
		}
		resp = s.Admin(t, http.MethodGet, "/api/admin/accounts?limit=2&cursor=acct_b", "")
		page.NextCursor = ""
		json.Unmarshal(resp.Body, &page)
		if len(page.Accounts) != 1 || page.Accounts[0].ID != "acct_c" || page.NextCursor != "" {
			t.Fatalf("page 2: %s", resp.Body)
		}
		for _, bad := range []string{"?limit=0x", "?limit=5000", "?status=gone"} {
			if resp := s.Admin(t, http.MethodGet, "/api/admin/accounts"+bad, ""); resp.Status != 400 {
				t.Errorf("%s: %d, want 400", bad, resp.Status)
			}
		}
		if resp := s.Do(t, request{Method: http.MethodGet, Path: "/api/admin/accounts"}); resp.Status != 401 {
			t.Errorf("without the token: %d", resp.Status)
		}
	})
	t.Run("Suspend", func(t *testing.T) {
		resp := s.Admin(t, http.MethodPost, "/api/admin/accounts/acct_b/suspend", "")
		if resp.Status != 200 || !json.Valid(resp.Body) || jsonKeys(t, resp.Body)["suspended_at"] == nil {
			t.Fatalf("suspend: %d %s", resp.Status, resp.Body)
		}
		track := request{Method: http.MethodPost, Path: "/v1/track", Body: `{"api_key":"` + key + `","endpoint":"/x","method":"GET"}`}
		resp = s.Do(t, track)
		if resp.Status != 403 || errorCode(t, resp.Body) != "account_suspended" || resp.Header.Get("Retry-After") != "" {
			t.Fatalf("track while suspended: %d %v %s", resp.Status, resp.Header, resp.Body)
		}
		resp = s.Do(t, request{Method: http.MethodGet, Path: "/v1/authz", Header: map[string]string{
			"X-API-Key": key, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/x"}})
		if resp.Status != 403 || resp.Header.Get("X-Meter-Denied") != "suspended" {
			t.Fatalf("authz while suspended: %d %v", resp.Status, resp.Header)
		}
		if q, _ := s.Meter.Quota("acct_b"); q.Denied != 2 || q.Calls != 0 {
			t.Fatalf("suspended calls: %d calls %d denied, want 0 and 2", q.Calls, q.Denied)
		}
		if resp := s.Admin(t, http.MethodPost, "/api/admin/accounts/acct_b/resume", ""); resp.Status != 200 {
			t.Fatalf("resume: %d", resp.Status)
		}
		if resp := s.Do(t, track); resp.Status != 200 {
			t.Fatalf("track after resume: %d %s", resp.Status, resp.Body)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		resp := s.Admin(t, http.MethodDelete, "/api/admin/accounts/acct_b", "")
		if resp.Status != 200 || jsonKeys(t, resp.Body)["deleted_at"] == nil {
			t.Fatalf("delete: %d %s", resp.Status, resp.Body)
		}
		resp = s.Do(t, request{Method: http.MethodPost, Path: "/v1/track", Body: `{"api_key":"` + key + `","endpoint":"/x","method":"GET"}`})
		if resp.Status != 401 {
			t.Fatalf("track with a deleted account's key: %d", resp.Status)
		}
		// account_id needs the service token, which this server has not
		// got: refused before the account is even looked up.
		resp = s.Do(t, request{Method: http.MethodPost, Path: "/v1/track", Body: `{"account_id":"acct_b","endpoint":"/x","method":"GET"}`})
		if resp.Status != 401 || errorCode(t, resp.Body) != "service_token_required" {
			t.Fatalf("track by id of a deleted account: %d %s", resp.Status, resp.Body)
		}
		if resp := s.Admin(t, http.MethodPatch, "/api/admin/accounts/acct_b", `{"plan":"pro"}`); resp.Status != 409 {
			t.Fatalf("patch a deleted account: %d", resp.Status)
		}
		if resp := s.Admin(t, http.MethodPost, "/api/admin/accounts/acct_b/keys", ""); resp.Status != 409 {
			t.Fatalf("key for a deleted account: %d", resp.Status)
		}
		if resp := s.Admin(t, http.MethodGet, "/api/usage/current?account_id=acct_b", ""); resp.Status != 200 {
			t.Fatalf("usage of a deleted account: %d", resp.Status)
		}
		resp = s.Admin(t, http.MethodGet, "/api/admin/accounts?status=deleted", "")
		if resp.Status != 200 || !json.Valid(resp.Body) {
			t.Fatalf("list deleted: %d", resp.Status)
		}
		if resp := s.Admin(t, http.MethodDelete, "/api/admin/accounts/nope", ""); resp.Status != 404 {
			t.Fatalf("delete unknown: %d", resp.Status)
		}
	})
}

func errorCode(tb testing.TB, body []byte) string {
	tb.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(body, &e)
	return e.Error.Code
}
