package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"
)

func (s *Server) registerOpsRoutes(r *mux.Router) {
	r.HandleFunc("/healthz", s.handleHealthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", s.handleReadyz).Methods(http.MethodGet, http.MethodHead)
	if s.metrics != nil {
		r.Handle("/metrics", s.metrics).Methods(http.MethodGet)
	}
}

// handleHealthz answers 200 while the process can serve HTTP at all.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz runs every readiness check; any failure answers 503 with
// the detail of each check.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	status, checks := http.StatusOK, map[string]any{}
	for name, check := range s.ready {
		ok, detail := check(r.Context())
		checks[name] = map[string]any{"ok": ok, "detail": detail}
		if !ok {
			status = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, map[string]any{"ready": status == http.StatusOK, "checks": checks})
}

// AddReadiness adds a named check to /readyz. Call it before serving.
func (s *Server) AddReadiness(name string, check Readiness) {
	if s.ready == nil {
		s.ready = map[string]Readiness{}
	}
	s.ready[name] = check
}
