package httpapi

import (
	"net/http"
	"strings"
)

// CORS: only the usage endpoints (/api/usage/*) may be called from other
// origins, and only from the exact origins configured. Browsers send the
// credential as an Authorization header (an API key or a portal token),
// never as a cookie, so Access-Control-Allow-Credentials is never sent and
// the allowed origin is always echoed by name, never as "*".

const usagePrefix = "/api/usage/"

// corsMaxAge is how long (seconds) a browser may cache a preflight answer.
const corsMaxAge = "600"

var errCORSOrigin = newError(http.StatusForbidden, "cors_origin_not_allowed",
	"this origin may not call meterd from a browser; add it to --cors-origins")

func corsSet(origins []string) map[string]bool {
	set := make(map[string]bool, len(origins))
	for _, o := range origins {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			set[o] = true
		}
	}
	return set
}

// corsHeaders marks answers to an allowed origin's usage reads readable
// by that origin's scripts.
func (s *Server) corsHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, usagePrefix) {
			w.Header().Add("Vary", "Origin")
			if o := r.Header.Get("Origin"); o != "" && s.cors[o] {
				w.Header().Set("Access-Control-Allow-Origin", o)
				w.Header().Set("Access-Control-Expose-Headers", HeaderRequestID)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// handleUsagePreflight answers a browser's CORS preflight for the usage
// endpoints: 204 with the allowed method and headers for a configured
// origin asking for GET, 403 otherwise (a browser then refuses the call).
func (s *Server) handleUsagePreflight(w http.ResponseWriter, r *http.Request) {
	o := r.Header.Get("Origin")
	method := r.Header.Get("Access-Control-Request-Method")
	if o == "" || !s.cors[o] || (method != "" && method != http.MethodGet) {
		w.Header().Del("Access-Control-Allow-Origin")
		s.writeError(w, r, errCORSOrigin)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET")
	h.Set("Access-Control-Allow-Headers", "Authorization, X-API-Key, X-Request-Id")
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
}
