package httpapi

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/meterd/meterd/meter"
)

// MiddlewareOption configures Middleware (and, through ProxyConfig, the
// reverse proxy: both share one gate).
type MiddlewareOption func(*gate)

// WithKeyHeader also reads the API key from the named header (checked
// before X-API-Key and Authorization: Bearer, which are always read).
func WithKeyHeader(name string) MiddlewareOption {
	return func(g *gate) { g.keyHeader = name }
}

// WithKeyQuery also reads the API key from the named query parameter,
// after the headers. Off by default: keys in URLs end up in access logs.
func WithKeyQuery(name string) MiddlewareOption {
	return func(g *gate) { g.keyQuery = name }
}

// WithStripKey removes the key (header or query parameter, wherever it
// was found) from the request the wrapped handler sees.
func WithStripKey() MiddlewareOption { return func(g *gate) { g.stripKey = true } }

// WithEndpoint names each call, e.g. by the router's route template
// (default: the request path, which the meter folds into a template).
func WithEndpoint(fn func(*http.Request) string) MiddlewareOption {
	return func(g *gate) { g.endpoint = fn }
}

// WithLogger logs ledger failures to l (default slog.Default()).
func WithLogger(l *slog.Logger) MiddlewareOption { return func(g *gate) { g.log = l } }

// WithObserver reports each decision to o (the metrics package).
func WithObserver(o Observer) MiddlewareOption { return func(g *gate) { g.obs = o } }

// Middleware meters a Go service in-process, the way the reverse proxy
// meters any API: each request's API key is looked up and the call
// decided before next runs; a missing or unknown key gets a 401 and an
// exhausted hard quota a 429 (JSON, with rate-limit headers), and next
// never runs. An allowed call is recorded with the status next answers
// and its latency to that answer, and the response carries the
// rate-limit headers. In sync durability the response headers leave only
// once the call is committed. next can read the decision with
// DecisionFrom. A protocol switch (Hijack) counts once, as status 101. A
// CORS preflight (OPTIONS with Origin and Access-Control-Request-Method)
// carries no credentials and passes unmetered.
//
// This is the embedded mode: m and its ledger live in the service's
// process, and bbolt lets one process open a ledger file, so it cannot
// share a ledger with a `meterd serve` (nor with another replica of the
// service). To meter through a running meterd, use RemoteMiddleware.
func Middleware(m *meter.Meter, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	g := newGate(m)
	for _, o := range opts {
		o(g)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g.serve(next, w, r)
		})
	}
}

func (g *gate) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	if isPreflight(r) {
		next.ServeHTTP(w, r)
		return
	}
	r, c := g.admit(w, r)
	if c == nil {
		return
	}
	if g.stripKey && c.src != keyMissing {
		r = withoutKey(g, r, c.src)
	}
	mw := &meteredWriter{ResponseWriter: w, g: g, c: c, r: r}
	completed := false
	defer func() {
		// next panicked before answering: the call happened and failed.
		if !completed && !mw.wrote {
			g.finish(r.Context(), c, w.Header(), http.StatusInternalServerError, time.Since(c.start))
		}
	}()
	next.ServeHTTP(mw, r)
	completed = true
	if !mw.wrote {
		mw.WriteHeader(http.StatusOK)
	}
}

// withoutKey returns a shallow copy of r without the key, leaving the
// caller's request untouched.
func withoutKey(g *gate, r *http.Request, src keySource) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	u := *r.URL
	r2.URL = &u
	g.strip(r2.Header, r2.URL, src)
	return r2
}

// meteredWriter records the call when the wrapped handler answers, and
// adds the rate-limit headers to that answer.
type meteredWriter struct {
	http.ResponseWriter
	g     *gate
	c     *gatedCall
	r     *http.Request
	wrote bool
}

func (w *meteredWriter) WriteHeader(code int) {
	// Informational answers (100 Continue, 103 Early Hints) are not the
	// answer; 101 is the last one the handler sends.
	if w.wrote || (code >= 100 && code < 200 && code != http.StatusSwitchingProtocols) {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.wrote = true
	w.g.finish(w.r.Context(), w.c, w.Header(), code, time.Since(w.c.start))
	w.ResponseWriter.WriteHeader(code)
}

func (w *meteredWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends the answer so far (recording the call first if it is the
// first thing sent).
func (w *meteredWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over (websockets): the call is recorded as
// a protocol switch, once.
func (w *meteredWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.wrote {
		w.wrote = true
		w.g.finish(w.r.Context(), w.c, w.Header(), http.StatusSwitchingProtocols, time.Since(w.c.start))
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *meteredWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
