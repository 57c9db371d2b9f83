package httpapi

import (
	"context"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// statusWriter remembers the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// routeName is the mux route template: metrics are labelled by it, never
// by the raw path, so ids cannot explode label cardinality. A request the
// hot-path dispatch served (serveHTTP) carries its route in its reqState.
func routeName(r *http.Request) string {
	if st := stateFrom(r.Context()); st != nil && st.route != "" {
		return st.route
	}
	if route := mux.CurrentRoute(r); route != nil {
		if tmpl, err := route.GetPathTemplate(); err == nil {
			return tmpl
		}
	}
	return "unmatched"
}

func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := routeName(r)
		s.observe(route, s.routeObserver(route), next, w, r)
	})
}

func (s *Server) instrumentNamed(name string, next http.Handler) http.Handler {
	obs := s.routeObserver(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.observe(name, obs, next, w, r)
	})
}

// reqState is what the middleware keeps for one request, in one
// allocation: the status writer, the request id and the header value
// that echoes it. The request context carries it for RequestID and
// routeName.
type reqState struct {
	statusWriter
	id    string
	route string
	idHdr [1]string
}

func (s *Server) observe(route string, obs routeObserver, next http.Handler, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &reqState{statusWriter: statusWriter{ResponseWriter: w}, route: route}
	st.id = requestID(r)
	st.idHdr[0] = st.id
	w.Header()[HeaderRequestID] = st.idHdr[:]
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, st))
	next.ServeHTTP(&st.statusWriter, r)
	if st.code == 0 {
		st.code = http.StatusOK
	}
	obs(r.Method, st.code, time.Since(start))
}

// HeaderRequestID carries the request id: taken from the client when it
// sends a sane one, generated otherwise, echoed on every answer and logged
// with every error. (It is in canonical form, so it may index a Header.)
const HeaderRequestID = "X-Request-Id"

type requestIDKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(requestIDKey{}).(*reqState)
	return st
}

// RequestID returns the request id stored in ctx ("" if none).
func RequestID(ctx context.Context) string {
	if st := stateFrom(ctx); st != nil {
		return st.id
	}
	return ""
}

// requestID is the client's id when sane, else 16 random hex digits. They
// need to be unique, not secret: the runtime's per-thread ChaCha8 source
// (math/rand/v2) gives that without a system call.
func requestID(r *http.Request) string {
	if id := r.Header.Get(HeaderRequestID); validRequestID(id) {
		return id
	}
	var b [16]byte
	const digits = "0123456789abcdef"
	for i, v := 0, rand.Uint64(); i < len(b); i, v = i+1, v>>4 {
		b[i] = digits[v&0xf]
	}
	return string(b[:])
}

// validRequestID accepts 1-64 characters of [A-Za-z0-9._-], so a client
// cannot inject text into logs through it.
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// limitHeaders answers 431 with a JSON body when headers exceed the
// configured size. (net/http's own, larger MaxHeaderBytes limit answers in
// plain text; this one comes first and speaks JSON.)
func (s *Server) limitHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headerSize(r) > s.maxHeader {
			s.writeError(w, r, errHeaderTooLarge)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func headerSize(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
