package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/meterd/meterd/meter"
)

// tokenHash holds a token's SHA-256: comparing fixed-size hashes in
// constant time leaks neither content nor length.
type tokenHash [sha256.Size]byte

func hashToken(t string) tokenHash { return sha256.Sum256([]byte(t)) }

func (h tokenHash) matches(candidate string) bool {
	c := hashToken(candidate)
	return subtle.ConstantTimeCompare(h[:], c[:]) == 1
}

// bearer returns the Authorization bearer credential, or "".
func bearer(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(v[7:])
}

// isAdmin reports whether the request carries the admin token.
func (s *Server) isAdmin(r *http.Request) bool {
	t := bearer(r)
	return t != "" && s.adminToken.matches(t)
}

// requireAdmin guards admin routes.
func (s *Server) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.isAdmin(r) {
			s.writeError(w, r, errUnauthorized)
			return
		}
		h(w, r)
	}
}

// requireService guards /v1/* when a service token is configured.
func (s *Server) requireService(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.hasService && !s.serviceToken.matches(bearer(r)) {
			s.writeError(w, r, errUnauthorized)
			return
		}
		h(w, r)
	}
}

// apiKeyFrom finds an account API key in the request: X-API-Key, or the
// bearer credential unless that is the service or admin token.
func (s *Server) apiKeyFrom(r *http.Request) string {
	if k := r.Header.Get(headerAPIKey); k != "" {
		return k
	}
	t := bearer(r)
	if t == "" || (s.hasService && s.serviceToken.matches(t)) || s.adminToken.matches(t) {
		return ""
	}
	return t
}

// errAccountIDNeedsService refuses a call that names its account by
// account_id while no service token is configured: anyone who reached the
// port could otherwise meter against any account.
var errAccountIDNeedsService = newError(http.StatusUnauthorized, "service_token_required",
	"account_id is accepted only with the service token (METER_SERVICE_TOKEN); without one, send the account's API key")

// checkAccountID lets a call name its account by account_id only when a
// service token guards the route (requireService has then checked it).
// A call that also carries an API key is metered by the key.
func (s *Server) checkAccountID(c meter.Call) error {
	if c.AccountID != "" && c.APIKey == "" && !s.hasService {
		return errAccountIDNeedsService
	}
	return nil
}
