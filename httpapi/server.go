package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/meterd/meterd/meter"
)

// Observer receives per-request and per-decision measurements (the
// metrics package implements it). Calls come from request goroutines.
type Observer interface {
	ObserveRequest(route, method string, code int, took time.Duration)
	ObserveDecision(plan string, allowed, overage bool, took time.Duration)
}

type nopObserver struct{}

func (nopObserver) ObserveRequest(string, string, int, time.Duration) {}
func (nopObserver) ObserveDecision(string, bool, bool, time.Duration) {}

// Readiness reports whether a dependency is ready, with detail for /readyz.
type Readiness func(ctx context.Context) (ok bool, detail any)

// Config configures a Server. Meter and AdminToken are required.
type Config struct {
	Meter *meter.Meter
	// AdminToken guards /api/admin/*; ServiceToken, when set, guards /v1/*.
	AdminToken   string
	ServiceToken string
	Logger       *slog.Logger
	Observer     Observer
	// Metrics serves /metrics (nil: 404).
	Metrics http.Handler
	// Usage answers history and per-endpoint queries (nil: 404 on them).
	Usage UsageReader
	// Billed, if set, splits the overview's overage revenue into billed
	// and still to bill.
	Billed BilledReader
	// Ready lists named readiness checks for /readyz.
	Ready map[string]Readiness
	// MaxHeaderBytes above which requests get a JSON 431 (default 32 KiB).
	MaxHeaderBytes int
	// Maintenance serves the admin backup and verify endpoints (nil: 404).
	Maintenance Maintenance
	// CORSOrigins may call the usage endpoints from a browser (exact
	// origins such as https://app.example.com; none by default).
	CORSOrigins []string
	// PortalKey signs portal tokens (at least 32 bytes); nil disables
	// POST /api/admin/accounts/{id}/portal-token. PortalMaxTTL caps a
	// token's lifetime (default 24h); PortalTTL is the default (1h).
	PortalKey    []byte
	PortalTTL    time.Duration
	PortalMaxTTL time.Duration
	// Webhooks serves /api/admin/webhooks (nil: 404 webhooks_off).
	Webhooks Webhooks
	// MaxInFlight bounds the requests handled at once (0: no bound);
	// MaxQueue more may wait up to QueueWait for a slot, and the rest are
	// answered 503 overloaded with Retry-After. /healthz, /readyz and
	// /metrics are never held back.
	MaxInFlight int
	MaxQueue    int
	QueueWait   time.Duration
}

// Server is the HTTP API. Create it with New; serve Handler().
type Server struct {
	meter        *meter.Meter
	adminToken   tokenHash
	serviceToken tokenHash
	hasService   bool
	log          *slog.Logger
	obs          Observer
	metrics      http.Handler
	usage        UsageReader
	billed       BilledReader
	ready        map[string]Readiness
	maxHeader    int
	router       *mux.Router
	maintenance  Maintenance
	cors         map[string]bool
	portal       *portalSigner
	biller       Biller // set by RegisterBilling; nil while billing is off
	webhooks     Webhooks
	// hotTrack and hotAuthz are the hot paths' handlers with their
	// middleware, served by serveHTTP without the router.
	hotTrack, hotAuthz http.Handler
	authzHandler       http.HandlerFunc // set by registerGatewayRoutes
	// admit bounds in-flight requests (nil: no bound); busy answers the
	// ones it refuses.
	admit *admission
	busy  http.Handler
	// routeObs caches one observer per route name (copy on write).
	routeObs   atomic.Pointer[map[string]routeObserver]
	routeObsMu sync.Mutex
}

// New builds a Server and its routes.
func New(cfg Config) *Server {
	s := &Server{meter: cfg.Meter, adminToken: hashToken(cfg.AdminToken),
		serviceToken: hashToken(cfg.ServiceToken), hasService: cfg.ServiceToken != "",
		log: cfg.Logger, obs: cfg.Observer, metrics: cfg.Metrics, usage: cfg.Usage, billed: cfg.Billed,
		ready: cfg.Ready, maxHeader: cfg.MaxHeaderBytes, maintenance: cfg.Maintenance}
	s.webhooks = cfg.Webhooks
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	if s.maxHeader <= 0 {
		s.maxHeader = 32 << 10
	}
	s.cors = corsSet(cfg.CORSOrigins)
	s.portal = newPortalSigner(cfg.PortalKey, cfg.PortalTTL, cfg.PortalMaxTTL)
	s.router = s.routes()
	s.admit = newAdmission(cfg.MaxInFlight, cfg.MaxQueue, cfg.QueueWait)
	s.busy = s.wrap("overloaded", func(w http.ResponseWriter, r *http.Request) { s.writeError(w, r, errBusy) })
	return s
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) routes() *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = s.wrap("not_found", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errNotFound)
	})
	r.MethodNotAllowedHandler = s.wrap("method_not_allowed", func(w http.ResponseWriter, req *http.Request) {
		if allow := allowedMethods(r, req); allow != "" {
			w.Header().Set("Allow", allow)
		}
		s.writeError(w, req, errMethod)
	})
	r.Use(s.instrument, s.limitHeaders, s.corsHeaders)
	s.registerTrackRoutes(r)
	s.registerGatewayRoutes(r)
	s.registerAdminRoutes(r)
	s.registerAccountRoutes(r)
	s.registerUsageRoutes(r)
	s.registerAnalyticsRoutes(r)
	s.registerOpsRoutes(r)
	s.registerMaintenanceRoutes(r)
	s.registerOpenAPIRoutes(r)
	s.registerConsoleRoutes(r)
	s.registerWebhookRoutes(r)
	s.hotTrack = s.instrumentNamed("/v1/track", s.limitHeaders(s.requireService(s.handleTrack)))
	s.hotAuthz = s.instrumentNamed("/v1/authz", s.limitHeaders(s.authzHandler))
	return r
}

// allowedMethods lists the methods the router serves for req's path, for
// the Allow header a 405 must carry.
func allowedMethods(router *mux.Router, req *http.Request) string {
	var methods []string
	router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		re, err := route.GetPathRegexp()
		if err != nil {
			return nil
		}
		if ok, _ := regexp.MatchString(re, req.URL.Path); !ok {
			return nil
		}
		ms, _ := route.GetMethods()
		methods = append(methods, ms...)
		return nil
	})
	slices.Sort(methods)
	return strings.Join(slices.Compact(methods), ", ")
}

// wrap applies the middleware chain to handlers mux calls outside a route
// (404, 405), which Router.Use does not cover.
func (s *Server) wrap(name string, h http.HandlerFunc) http.Handler {
	return s.instrumentNamed(name, s.limitHeaders(h))
}

// NewHTTPServer returns an http.Server with timeouts suited to a metering
// sidecar: short header and body reads, bounded writes, idle keep-alive.
func NewHTTPServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// routeObserver records one request of a known route.
type routeObserver func(method string, code int, took time.Duration)

// routeObserverSource is an Observer that can do its label lookups once
// per route (the metrics package does); the Server caches what it returns.
type routeObserverSource interface {
	ForRoute(route string) func(method string, code int, took time.Duration)
}

// routeObserver returns the cached observer of route, making it on first
// use. Routes are the router's templates plus a few fixed names, so the
// cache stays small.
func (s *Server) routeObserver(route string) routeObserver {
	if m := s.routeObs.Load(); m != nil {
		if o, ok := (*m)[route]; ok {
			return o
		}
	}
	o := s.newRouteObserver(route)
	s.routeObsMu.Lock()
	defer s.routeObsMu.Unlock()
	next := map[string]routeObserver{route: o}
	if old := s.routeObs.Load(); old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	s.routeObs.Store(&next)
	return o
}

func (s *Server) newRouteObserver(route string) routeObserver {
	if src, ok := s.obs.(routeObserverSource); ok {
		return src.ForRoute(route)
	}
	obs := s.obs
	return func(method string, code int, took time.Duration) { obs.ObserveRequest(route, method, code, took) }
}

// serveHTTP sends the metering hot paths (/v1/track, /v1/authz) straight
// to their handlers, wrapped in the same middleware as the router's
// routes: matching them through the router costs regexps and two context
// copies per call. Everything else goes to the router.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.admit != nil && !exemptFromAdmission(r.URL.Path) {
		if !s.admit.acquire(r) {
			s.busy.ServeHTTP(w, r)
			return
		}
		defer s.admit.release()
	}
	switch r.URL.Path {
	case "/v1/track":
		if r.Method == http.MethodPost {
			s.hotTrack.ServeHTTP(w, r)
			return
		}
	case "/v1/authz":
		s.hotAuthz.ServeHTTP(w, r)
		return
	}
	s.router.ServeHTTP(w, r)
}
