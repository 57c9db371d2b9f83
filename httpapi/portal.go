package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/meterd/meterd/meter"
)

// Portal tokens let a customer's browser read one account's usage without
// ever holding its API key. A token is
//
//	mpt_ base64url(payload) . base64url(HMAC-SHA256(key, "mpt1." payload))
//
// where payload is JSON {"a": account id, "x": expiry (unix seconds),
// "s": "usage:read"}. It grants GET /api/usage/{current,history,endpoints}
// of that account until it expires, nothing else. Tokens are not stored:
// rotating the signing key (cmd/meterd keeps it in DATA_DIR/portal.key)
// revokes them all at once.
const portalPrefix = "mpt_"

const portalScopeUsage = "usage:read"

type portalClaims struct {
	Account string `json:"a"`
	Expiry  int64  `json:"x"`
	Scope   string `json:"s"`
}

// portalSigner signs and checks portal tokens.
type portalSigner struct {
	key         []byte
	ttl, maxTTL time.Duration
}

func newPortalSigner(key []byte, ttl, maxTTL time.Duration) *portalSigner {
	if len(key) == 0 {
		return nil
	}
	if maxTTL <= 0 {
		maxTTL = 24 * time.Hour
	}
	if ttl <= 0 {
		ttl = time.Hour
	}
	return &portalSigner{key: key, ttl: min(ttl, maxTTL), maxTTL: maxTTL}
}

func (p *portalSigner) mac(payload string) []byte {
	h := hmac.New(sha256.New, p.key)
	h.Write([]byte("mpt1."))
	h.Write([]byte(payload))
	return h.Sum(nil)
}

func (p *portalSigner) sign(c portalClaims) string {
	b, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return portalPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(p.mac(payload))
}

var (
	errPortalToken   = newError(http.StatusUnauthorized, "invalid_portal_token", "portal token is malformed or its signature does not match")
	errPortalExpired = newError(http.StatusUnauthorized, "portal_token_expired", "portal token has expired; ask the application for a new one")
	errPortalOff     = newError(http.StatusNotFound, "portal_disabled", "portal tokens are not enabled on this server")
)

// verify checks the signature, scope and expiry of token at now.
func (p *portalSigner) verify(token string, now time.Time) (portalClaims, error) {
	var c portalClaims
	payload, sig, ok := strings.Cut(strings.TrimPrefix(token, portalPrefix), ".")
	if !ok {
		return c, errPortalToken
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, p.mac(payload)) {
		return c, errPortalToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.Account == "" || c.Scope != portalScopeUsage {
		return c, errPortalToken
	}
	if now.Unix() >= c.Expiry {
		return c, errPortalExpired
	}
	return c, nil
}

// portalAccount reports whether the request carries a portal token and,
// if so, the account it grants (or why it grants nothing).
func (s *Server) portalAccount(r *http.Request) (string, bool, error) {
	t := bearer(r)
	if !strings.HasPrefix(t, portalPrefix) {
		return "", false, nil
	}
	if s.portal == nil {
		return "", true, errPortalToken
	}
	c, err := s.portal.verify(t, s.meter.Now())
	if err != nil {
		return "", true, err
	}
	if _, err := s.meter.Account(c.Account); err != nil {
		return "", true, err
	}
	return c.Account, true, nil
}

// portalTokenRequest is the (optional) body of POST
// /api/admin/accounts/{id}/portal-token.
type portalTokenRequest struct {
	// TTLSeconds is the token's lifetime (default: the server's portal
	// TTL; at most its maximum).
	TTLSeconds int64 `json:"ttl_seconds"`
}

type portalTokenResponse struct {
	Token     string `json:"token"`
	AccountID string `json:"account_id"`
	ExpiresAt string `json:"expires_at"`
	Scope     string `json:"scope"`
}

func (s *Server) handlePortalToken(w http.ResponseWriter, r *http.Request) {
	if s.portal == nil {
		s.writeError(w, r, errPortalOff)
		return
	}
	var req portalTokenRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req, MaxBodyBytes); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	ttl := s.portal.ttl
	if req.TTLSeconds != 0 {
		if req.TTLSeconds < 1 || time.Duration(req.TTLSeconds)*time.Second > s.portal.maxTTL {
			s.writeError(w, r, meter.Invalid("ttl_seconds", "must be from 1 to %d", int64(s.portal.maxTTL/time.Second)))
			return
		}
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	a, err := s.meter.Account(mux.Vars(r)["id"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	exp := s.meter.Now().Add(ttl).Truncate(time.Second)
	tok := s.portal.sign(portalClaims{Account: a.ID, Expiry: exp.Unix(), Scope: portalScopeUsage})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, portalTokenResponse{Token: tok, AccountID: a.ID,
		ExpiresAt: exp.UTC().Format(time.RFC3339), Scope: portalScopeUsage})
}
