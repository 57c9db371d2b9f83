package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestAdmin_PlanChange: moving a blocked Free account to Pro lets the very
// next call through, against the Pro limit.
func TestAdmin_PlanChange(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	key := s.MustAccountWithKey(t, "acct_up", "free")
	s.MustFill(t, key, 1000)
	mustErrorBody(t, s.Track(t, key), http.StatusTooManyRequests, "quota_exceeded")

	resp := s.Admin(t, http.MethodPatch, "/api/admin/accounts/acct_up", `{"plan":"pro"}`)
	if resp.Status != http.StatusOK {
		t.Fatalf("patch: %d %s", resp.Status, resp.Body)
	}
	var acct struct {
		ID, Plan, Name string
	}
	mustUnmarshal(t, resp.Body, &acct)
	if acct.ID != "acct_up" || acct.Plan != "pro" || acct.Name != "Account acct_up" {
		t.Errorf("patched account %+v, want acct_up on pro with its name kept", acct)
	}

	r := decodeTrack(t, s.Track(t, key), http.StatusOK)
	if !r.Allowed || r.Plan != "pro" || *r.Limit != 100_000 || *r.Remaining != 98_999 || r.Overage {
		t.Errorf("after upgrade: %+v, want allowed on pro, remaining 98999", r)
	}
	u := s.MustUsage(t, "acct_up")
	if u.Plan != "pro" || u.APICalls != 1001 || u.DeniedCalls != 1 {
		t.Errorf("usage %+v, want pro with 1001 calls and 1 denied", u)
	}

	// A downgrade waits for the period end by default: Pro stays in force,
	// and the change shows as pending until cancelled.
	resp = s.Admin(t, http.MethodPatch, "/api/admin/accounts/acct_up", `{"plan":"free"}`)
	var pending struct {
		Plan          string `json:"plan"`
		PendingPlan   string `json:"pending_plan"`
		PendingPlanAt string `json:"pending_plan_at"`
	}
	mustUnmarshal(t, resp.Body, &pending)
	if pending.Plan != "pro" || pending.PendingPlan != "free" || pending.PendingPlanAt != "2026-04-01T00:00:00Z" {
		t.Errorf("scheduled downgrade: %s", resp.Body)
	}
	decodeTrack(t, s.Track(t, key), http.StatusOK)
	resp = s.Admin(t, http.MethodDelete, "/api/admin/accounts/acct_up/pending-plan", "")
	if resp.Status != http.StatusOK || strings.Contains(string(resp.Body), "pending_plan") {
		t.Errorf("cancel: %d %s", resp.Status, resp.Body)
	}
	if resp := s.Admin(t, http.MethodPatch, "/api/admin/accounts/acct_up", `{"plan":"free","effective":"later"}`); resp.Status != http.StatusBadRequest {
		t.Errorf("effective later: %d %s", resp.Status, resp.Body)
	}

	// "effective": "now": the Free limit applies at once again.
	s.Admin(t, http.MethodPatch, "/api/admin/accounts/acct_up", `{"plan":"free","effective":"now"}`)
	mustErrorBody(t, s.Track(t, key), http.StatusTooManyRequests, "quota_exceeded")
}

func TestAdmin_Accounts(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	resp := s.Admin(t, http.MethodPost, "/api/admin/accounts", `{"name":"Ada","email":"ada@example.com"}`)
	if resp.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	var created struct {
		ID        string            `json:"id"`
		Plan      string            `json:"plan"`
		Email     string            `json:"email"`
		CreatedAt string            `json:"created_at"`
		Keys      []json.RawMessage `json:"keys"`
	}
	mustUnmarshal(t, resp.Body, &created)
	if !strings.HasPrefix(created.ID, "acct_") || created.Plan != "free" || created.Email != "ada@example.com" ||
		created.CreatedAt != "2026-03-10T12:00:00Z" || created.Keys == nil || len(created.Keys) != 0 {
		t.Errorf("created %s: want a generated acct_ id on free, created now, no keys", resp.Body)
	}
	got := s.Admin(t, http.MethodGet, "/api/admin/accounts/"+created.ID, "")
	if got.Status != http.StatusOK || string(got.Body) != string(resp.Body) {
		t.Errorf("get: %d %s, want the created account %s", got.Status, got.Body, resp.Body)
	}

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"duplicate id", http.MethodPost, "/api/admin/accounts", `{"id":"` + created.ID + `","name":"x"}`, http.StatusConflict, "account_exists"},
		{"no name", http.MethodPost, "/api/admin/accounts", `{"id":"acct_x"}`, http.StatusBadRequest, "invalid_request"},
		{"unknown plan", http.MethodPost, "/api/admin/accounts", `{"name":"x","plan":"gold"}`, http.StatusBadRequest, "invalid_request"},
		{"bad email", http.MethodPost, "/api/admin/accounts", `{"name":"x","email":"no"}`, http.StatusBadRequest, "invalid_request"},
		{"bad id", http.MethodPost, "/api/admin/accounts", `{"id":"a b","name":"x"}`, http.StatusBadRequest, "invalid_request"},
		{"get unknown", http.MethodGet, "/api/admin/accounts/acct_nope", "", http.StatusNotFound, "account_not_found"},
		{"patch unknown", http.MethodPatch, "/api/admin/accounts/acct_nope", `{"plan":"pro"}`, http.StatusNotFound, "account_not_found"},
		{"patch bad plan", http.MethodPatch, "/api/admin/accounts/" + created.ID, `{"plan":"gold"}`, http.StatusBadRequest, "invalid_request"},
		{"key for unknown", http.MethodPost, "/api/admin/accounts/acct_nope/keys", "", http.StatusNotFound, "account_not_found"},
		{"revoke unknown", http.MethodDelete, "/api/admin/keys/key_nope", "", http.StatusNotFound, "key_not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustErrorBody(t, s.Admin(t, tc.method, tc.path, tc.body), tc.status, tc.code)
		})
	}
	if n := s.Meter.AccountCount(); n != 1 {
		t.Errorf("%d accounts, want 1: failed requests must create none", n)
	}
	if u := s.MustUsage(t, created.ID); u.Plan != "free" {
		t.Errorf("plan %q after a rejected patch, want free", u.Plan)
	}
}

func TestAdmin_Keys(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	s.MustCreateAccount(t, "acct_keys", "free")
	resp := s.Admin(t, http.MethodPost, "/api/admin/accounts/acct_keys/keys", "")
	if resp.Status != http.StatusCreated || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("issue: %d Cache-Control %q: %s", resp.Status, resp.Header.Get("Cache-Control"), resp.Body)
	}
	var k issuedKey
	mustUnmarshal(t, resp.Body, &k)
	if !strings.HasPrefix(k.Key, "mk_") || len(k.Key) != 46 || k.Prefix != k.Key[:11] ||
		k.AccountID != "acct_keys" || !strings.HasPrefix(k.ID, "key_") {
		t.Errorf("issued %+v: want an mk_ key of 46 characters with its 11-character prefix", k)
	}
	decodeTrack(t, s.Track(t, k.Key), http.StatusOK)

	// The account lists the key by id and prefix, never its secret.
	acct := s.Admin(t, http.MethodGet, "/api/admin/accounts/acct_keys", "")
	if strings.Contains(string(acct.Body), k.Key) || !strings.Contains(string(acct.Body), k.Prefix) {
		t.Errorf("account body %s: want the prefix and not the key", acct.Body)
	}

	for i := range 2 { // revoking twice is not an error
		if r := s.Admin(t, http.MethodDelete, "/api/admin/keys/"+k.ID, ""); r.Status != http.StatusNoContent || len(r.Body) != 0 {
			t.Fatalf("revoke %d: %d %s, want 204 and no body", i, r.Status, r.Body)
		}
	}
	mustErrorBody(t, s.Track(t, k.Key), http.StatusUnauthorized, "invalid_api_key")
	var listed struct {
		Keys []struct {
			ID        string  `json:"id"`
			RevokedAt *string `json:"revoked_at"`
		} `json:"keys"`
	}
	mustUnmarshal(t, s.Admin(t, http.MethodGet, "/api/admin/accounts/acct_keys", "").Body, &listed)
	if len(listed.Keys) != 1 || listed.Keys[0].ID != k.ID || listed.Keys[0].RevokedAt == nil {
		t.Errorf("keys %+v, want %s marked revoked", listed.Keys, k.ID)
	}
	if u := s.MustUsage(t, "acct_keys"); u.APICalls != 1 {
		t.Errorf("api_calls %d, want 1: the revoked key's call must not count", u.APICalls)
	}
}

// TestAdmin_BearerCase: the auth scheme is case-insensitive (RFC 9110), so
// "bearer" with the right token is accepted.
func TestAdmin_BearerCase(t *testing.T) {
	t.Parallel()
	s := MustOpenServer(t)
	s.MustCreateAccount(t, "acct_case", "free")
	resp := s.Do(t, request{Method: http.MethodGet, Path: "/api/admin/accounts/acct_case",
		Header: map[string]string{"Authorization": "bearer " + testAdminToken}})
	if resp.Status != http.StatusOK {
		t.Errorf("lowercase bearer with the admin token: %d %s, want 200", resp.Status, resp.Body)
	}
}
