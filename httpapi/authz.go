package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/mux"
	"github.com/meterd/meterd/meter"
)

// registerGatewayRoutes adds forward auth and batch events.
func (s *Server) registerGatewayRoutes(r *mux.Router) {
	g := newGate(s.meter)
	g.log, g.obs = s.log, s.obs
	authz := s.requireGatewayToken(s.handleAuthz(g))
	s.authzHandler = authz
	// Any method: Envoy's ext_authz sends the original method, and the
	// original path under path_prefix /v1/authz.
	r.HandleFunc("/v1/authz", authz)
	r.PathPrefix("/v1/authz/").HandlerFunc(authz)
	r.HandleFunc("/v1/events", s.requireService(s.handleEvents)).Methods(http.MethodPost)
}

// headerGatewayToken carries the service token on /v1/authz, where the
// Authorization header is the client's own (its API key).
const headerGatewayToken = "X-Meter-Service-Token"

// requireGatewayToken guards /v1/authz when a service token is set: the
// gateway sends it in X-Meter-Service-Token (or as the bearer, when the
// client's key travels in X-API-Key).
func (s *Server) requireGatewayToken(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.hasService {
			t := r.Header.Get(headerGatewayToken)
			if t == "" {
				t = bearer(r)
			}
			if !s.serviceToken.matches(t) {
				s.writeError(w, r, errUnauthorized)
				return
			}
		}
		h(w, r)
	}
}

// authzKeyQuery is the query parameter of the original URI that may carry
// the API key, after X-API-Key and the bearer credential.
const authzKeyQuery = "api_key"

// handleAuthz is forward auth for gateways: it meters the original
// request the gateway describes and answers 200 (the gateway forwards it),
// 401 or 429, always with the rate-limit headers for the gateway to copy.
// The original request comes from X-Forwarded-Method/-Uri (Traefik
// ForwardAuth), X-Original-Method/-URI (nginx auth_request), or the method
// and the path below /v1/authz (Envoy ext_authz with path_prefix
// /v1/authz). nginx turns any status but 2xx/401/403 into 500, so
// ?deny_status=403 on /v1/authz makes a quota denial a 403, marked by
// X-Meter-Denied: quota, for nginx to turn back into a 429.
//
// A 200 has no body and carries X-Meter-Account and X-Meter-Plan for the
// gateway to pass to the API. The call is recorded at once, without
// status or latency: the gateway, not meterd, sees the API's answer.
func (s *Server) handleAuthz(g *gate) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		method, target, ok := originalRequest(r)
		if !ok {
			s.writeError(w, r, errNoOriginal)
			return
		}
		if strings.EqualFold(method, http.MethodOptions) && r.Header.Get("Origin") != "" &&
			r.Header.Get("Access-Control-Request-Method") != "" {
			w.WriteHeader(http.StatusOK) // a CORS preflight: no credentials, not metered
			return
		}
		key := s.apiKeyFrom(r)
		if key == "" && strings.Contains(target, authzKeyQuery+"=") {
			if u, err := url.ParseRequestURI(target); err == nil {
				key = u.Query().Get(authzKeyQuery)
			}
		}
		call := meter.Call{APIKey: key, AccountID: authzAccount(r), Endpoint: target, Method: method}
		if err := s.checkAccountID(call); err != nil {
			s.writeError(w, r, err)
			return
		}
		resv := g.decide(w, r, call)
		if resv == nil {
			return
		}
		if !resv.Result().Allowed {
			g.writeDenied(w, resv, denyStatus(r))
			return
		}
		g.finish(r.Context(), &gatedCall{resv: resv}, w.Header(), 0, 0)
		res := resv.Result()
		w.Header().Set(HeaderAccount, res.AccountID)
		w.Header().Set(HeaderPlan, res.Plan)
		w.WriteHeader(http.StatusOK)
	}
}

var errNoOriginal = newError(http.StatusBadRequest, "invalid_request",
	"no original request: send X-Forwarded-Method and X-Forwarded-Uri, X-Original-Method and X-Original-URI, or use /v1/authz/<original path>")

// originalRequest finds the method and URI of the request the gateway
// asks about.
func originalRequest(r *http.Request) (method, target string, ok bool) {
	if u := r.Header.Get("X-Forwarded-Uri"); u != "" {
		return firstNonEmpty(r.Header.Get("X-Forwarded-Method"), r.Method), u, true
	}
	if u := r.Header.Get("X-Original-URI"); u != "" {
		return firstNonEmpty(r.Header.Get("X-Original-Method"), r.Method), u, true
	}
	if rest, found := strings.CutPrefix(r.URL.Path, "/v1/authz/"); found {
		target = "/" + rest
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		return r.Method, target, true
	}
	return "", "", false
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// authzAccount is the account a gateway names with ?account_id= on the
// bare /v1/authz (accepted only with the service token): for gateways
// that authenticate clients themselves. Below /v1/authz the query is the
// client's, and a client never names its own account.
func authzAccount(r *http.Request) string {
	if r.URL.Path != "/v1/authz" {
		return ""
	}
	return r.URL.Query().Get("account_id")
}

// denyStatus is 403 when the gateway asked for it (nginx), else 429. Only
// the bare /v1/authz reads it: below it the query is the client's.
func denyStatus(r *http.Request) int {
	if r.URL.Path == "/v1/authz" && r.URL.Query().Get("deny_status") == "403" {
		return http.StatusForbidden
	}
	return http.StatusTooManyRequests
}
