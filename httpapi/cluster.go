package httpapi

import (
	"context"
	"net/http"

	"github.com/meterd/meterd/meter"
)

// ClusterNodes lists a cluster's nodes (the cluster package implements it).
type ClusterNodes interface {
	Nodes(ctx context.Context) ([]meter.ClusterNode, error)
}

// AddClusterRoutes serves GET /api/admin/cluster in cluster mode. Routes
// added after New go through the same middleware (mux applies it on match).
func (s *Server) AddClusterRoutes(c ClusterNodes) {
	s.router.HandleFunc("/api/admin/cluster", s.requireAdmin(func(w http.ResponseWriter, r *http.Request) {
		s.handleCluster(w, r, c)
	})).Methods(http.MethodGet)
}

// handleCluster answers the node registry: id, address, last heartbeat,
// export backlog and leases held of each node.
func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request, c ClusterNodes) {
	nodes, err := c.Nodes(r.Context())
	if err != nil {
		s.writeError(w, r, newError(http.StatusServiceUnavailable, "cluster_unavailable",
			"the cluster's shared state cannot be reached"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": nodes})
}
