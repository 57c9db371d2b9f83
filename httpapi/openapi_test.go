package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gorilla/mux"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/meter"
)

// The OpenAPI description (httpapi/openapi.json) is checked three ways:
// it is valid OpenAPI 3.1; every route of the router, with its path
// parameters, is in it (TestOpenAPI_CoversRoutes); and every answer the
// test servers of this package give (MustOpenServer, mustGWServer) is
// validated against it, with every query parameter the tests send
// declared (conformance, below). Response schemas forbid unknown
// properties, so a field added to a response without the description
// fails the test that sees it.

var spec struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

// loadSpec parses and validates the embedded description once.
func loadSpec(tb testing.TB) (*openapi3.T, routers.Router) {
	tb.Helper()
	spec.once.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
		if err != nil {
			spec.err = fmt.Errorf("parse httpapi/openapi.json: %w", err)
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			spec.err = fmt.Errorf("httpapi/openapi.json is not valid OpenAPI: %w", err)
			return
		}
		// Route on any host: the test servers listen on random ports.
		routing := *doc
		routing.Servers = nil
		spec.doc = doc
		spec.router, spec.err = gorillamux.NewRouter(&routing)
	})
	if spec.err != nil {
		tb.Fatal(spec.err)
	}
	return spec.doc, spec.router
}

func TestOpenAPI_Valid31(t *testing.T) {
	doc, _ := loadSpec(t)
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi: %q, want 3.1.0", doc.OpenAPI)
	}
	s := MustOpenServer(t)
	resp := s.Do(t, request{Method: http.MethodGet, Path: "/openapi.json"})
	if resp.Status != http.StatusOK || !bytes.Equal(resp.Body, httpapi.OpenAPI) {
		t.Fatalf("GET /openapi.json: %d, %d bytes; want 200 and the embedded description", resp.Status, len(resp.Body))
	}
	served, err := openapi3.NewLoader().LoadFromData(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := served.Validate(context.Background()); err != nil {
		t.Fatalf("served description does not validate as OpenAPI 3.1: %v", err)
	}
}

// allRoutesServer builds a Server with every optional part wired, so the
// router holds every route meterd can serve.
func allRoutesServer(t *testing.T) *mux.Router {
	s := MustOpenServer(t)
	api := httpapi.New(httpapi.Config{Meter: s.Meter, AdminToken: testAdminToken, Usage: s.Ledger,
		Metrics: http.NotFoundHandler(), Maintenance: s.Ledger, Billed: s.Ledger})
	api.RegisterBilling(nil, "")
	api.AddClusterRoutes(noNodes{})
	return api.Router()
}

// noNodes is a cluster without nodes, so the cluster route is registered.
type noNodes struct{}

func (noNodes) Nodes(context.Context) ([]meter.ClusterNode, error) { return nil, nil }

// prefixRoutes maps a PathPrefix route to its path in the description.
var prefixRoutes = map[string]string{"/v1/authz/": "/v1/authz/{path}"}

// TestOpenAPI_CoversRoutes walks the router: every route and method, and
// every path parameter, must be in httpapi/openapi.json.
func TestOpenAPI_CoversRoutes(t *testing.T) {
	doc, _ := loadSpec(t)
	var seen int
	allRoutesServer(t).Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		path := tmpl
		if p, ok := prefixRoutes[tmpl]; ok {
			path = p
		} else if re, _ := route.GetPathRegexp(); !strings.HasSuffix(re, "$") {
			t.Errorf("route %s is a path prefix: add it to prefixRoutes in openapi_test.go and to httpapi/openapi.json", tmpl)
			return nil
		}
		item := doc.Paths.Value(path)
		if item == nil {
			t.Errorf("route %s is missing from httpapi/openapi.json: add \"paths\": {%q: {...}}", tmpl, path)
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil { // any method: the description must have GET
			methods = []string{http.MethodGet}
		}
		for _, m := range methods {
			seen++
			op := item.GetOperation(m)
			if op == nil {
				t.Errorf("route %s %s is missing from httpapi/openapi.json: add paths.%q.%s", m, tmpl, path, strings.ToLower(m))
				continue
			}
			for _, name := range pathVars(path) {
				if !hasParam(item.Parameters, "path", name) && !hasParam(op.Parameters, "path", name) {
					t.Errorf("%s %s: path parameter {%s} is not declared in httpapi/openapi.json", m, path, name)
				}
			}
			if len(op.Responses.Map()) == 0 {
				t.Errorf("%s %s: no responses described", m, path)
			}
		}
		return nil
	})
	if seen < 25 {
		t.Fatalf("walked only %d route methods: is the router wired?", seen)
	}
}

var pathVarRE = regexp.MustCompile(`\{([^}:]+)(:[^}]*)?\}`)

func pathVars(tmpl string) []string {
	var out []string
	for _, m := range pathVarRE.FindAllStringSubmatch(tmpl, -1) {
		out = append(out, m[1])
	}
	return out
}

func hasParam(ps openapi3.Parameters, in, name string) bool {
	for _, p := range ps {
		if p.Value != nil && p.Value.In == in && p.Value.Name == name {
			return true
		}
	}
	return false
}

// conformance wraps a test server's handler: each answer is validated
// against the description, and each query parameter of the request must
// be declared. Problems are reported when the test ends.
func conformance(tb testing.TB, h http.Handler) http.Handler {
	_, router := loadSpec(tb)
	var mu sync.Mutex
	var problems []string
	done := false
	tb.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		done = true
		for _, p := range problems {
			tb.Errorf("OpenAPI conformance: %s", p)
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &exchangeRecorder{ResponseWriter: w, status: http.StatusOK}
		query := r.URL.Query()
		h.ServeHTTP(rec, r)
		if problem := checkExchange(router, r, query, rec); problem != "" {
			mu.Lock()
			if !done && len(problems) < 20 {
				problems = append(problems, problem)
			}
			mu.Unlock()
		}
	})
}

// checkExchange returns what is wrong with one request and its answer.
func checkExchange(router routers.Router, r *http.Request, query url.Values, rec *exchangeRecorder) string {
	if rec.hijacked || rec.truncated {
		return ""
	}
	req := r.Clone(context.Background())
	req.URL.Scheme, req.URL.Host = "http", r.Host
	route, params, err := router.FindRoute(req)
	if err != nil {
		return "" // not a described route: 404 and 405 answers
	}
	where := fmt.Sprintf("%s %s -> %d", r.Method, r.URL.RequestURI(), rec.status)
	if route.Path != "/v1/authz/{path}" { // below it the query is the client's
		for name := range query {
			if !hasParam(route.Operation.Parameters, "query", name) && !hasParam(route.PathItem.Parameters, "query", name) {
				return fmt.Sprintf("%s: query parameter %q is not declared for %s %s in httpapi/openapi.json", where, name, route.Method, route.Path)
			}
		}
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 rec.status, Header: rec.Header(),
		Body:    io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: false},
	}
	if r.Method == http.MethodHead || rec.status == http.StatusNoContent {
		in.Options.ExcludeResponseBody = true
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		body := rec.body.String()
		if len(body) > 300 {
			body = body[:300] + "..."
		}
		return fmt.Sprintf("%s: answer does not match httpapi/openapi.json: %v\nbody: %s", where, err, body)
	}
	return ""
}

// exchangeRecorder copies the answer (up to 1 MiB) while passing it on.
type exchangeRecorder struct {
	http.ResponseWriter
	status    int
	wrote     bool
	body      bytes.Buffer
	truncated bool
	hijacked  bool
}

func (e *exchangeRecorder) WriteHeader(code int) {
	if !e.wrote && code >= 200 {
		e.status, e.wrote = code, true
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *exchangeRecorder) Write(b []byte) (int, error) {
	e.wrote = true
	if e.body.Len()+len(b) <= 1<<20 {
		e.body.Write(b)
	} else {
		e.truncated = true
	}
	return e.ResponseWriter.Write(b)
}

func (e *exchangeRecorder) Unwrap() http.ResponseWriter { return e.ResponseWriter }

func (e *exchangeRecorder) Flush() { http.NewResponseController(e.ResponseWriter).Flush() }

// The checker itself: a response field or a query parameter the
// description lacks is reported, naming it.
func TestOpenAPI_ConformanceCatchesDrift(t *testing.T) {
	_, router := loadSpec(t)
	check := func(target, body string) string {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		rec := &exchangeRecorder{ResponseWriter: httptest.NewRecorder(), status: http.StatusOK}
		rec.Header().Set("Content-Type", "application/json")
		rec.Write([]byte(body))
		return checkExchange(router, req, req.URL.Query(), rec)
	}
	good := `{"status":"ok"}`
	if p := check("/healthz", good); p != "" {
		t.Fatalf("a conforming answer was flagged: %s", p)
	}
	if p := check("/healthz", `{"status":"ok","uptime_seconds":3}`); !strings.Contains(p, "uptime_seconds") {
		t.Errorf("an undescribed response field was not named: %q", p)
	}
	if p := check("/healthz?verbose=1", good); !strings.Contains(p, `query parameter "verbose"`) {
		t.Errorf("an undescribed query parameter was not named: %q", p)
	}
}
