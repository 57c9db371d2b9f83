package httpapi

import (
	_ "embed"
	"net/http"

	"github.com/gorilla/mux"
)

// OpenAPI is the OpenAPI 3.1 description of the HTTP API, served at
// /openapi.json. httpapi/openapi_test.go fails when a route, a query
// parameter or a response field is missing from it.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) registerOpenAPIRoutes(r *mux.Router) {
	r.HandleFunc("/openapi.json", handleOpenAPI).Methods(http.MethodGet)
}

func handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(OpenAPI)
}
