package httpapi

import "github.com/gorilla/mux"

// Router is the mux router behind Handler, for tests that walk the routes
// (Handler answers the hot paths before the router).
func (s *Server) Router() *mux.Router { return s.router }
