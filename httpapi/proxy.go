package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/meterd/meterd/meter"
)

// ProxyConfig configures the metering reverse proxy. Meter and Upstream
// are required.
type ProxyConfig struct {
	Meter *meter.Meter
	// Upstream is the API's base URL, e.g. http://127.0.0.1:3000; a path
	// in it prefixes every forwarded path.
	Upstream string
	// KeyHeader and KeyQuery name an extra header and a query parameter
	// to read the API key from ("" for none); X-API-Key and
	// Authorization: Bearer are always read.
	KeyHeader string
	KeyQuery  string
	// StripKey removes the key from the request the API receives.
	StripKey bool
	// Transport reaches the upstream (default: a keep-alive pool of up to
	// 512 idle connections, no environment proxy, no transparent gzip).
	Transport http.RoundTripper
	Logger    *slog.Logger
	Observer  Observer
}

// Headers the proxy sets on the forwarded request, so the API knows whom
// it serves without a lookup of its own. Values a client sends are
// replaced.
const (
	HeaderAccount = "X-Meter-Account"
	HeaderPlan    = "X-Meter-Plan"
)

// statusClientClosed is recorded when the client went away before the API
// answered (nginx's convention; it is never sent).
const statusClientClosed = 499

// proxy forwards metered calls to the upstream API.
type proxy struct {
	gate     *gate
	upstream *url.URL
	rp       *httputil.ReverseProxy
}

// NewProxy returns the handler of the proxy listener: every path is
// metered through the same gate as Middleware and forwarded to the
// upstream with X-Forwarded-For/Host/Proto. A missing or unknown key gets
// a 401 and an exhausted hard quota a 429 (JSON), and the upstream never
// sees the request. Otherwise the upstream's answer streams back
// unbuffered with the rate-limit headers added; the call is recorded with
// its status and the latency to the upstream's response headers, which in
// sync durability leave only once the record is committed. A protocol
// switch (websocket) passes through and counts once, as status 101. A
// CORS preflight carries no credentials and passes unmetered.
//
// When the upstream cannot be reached the client gets a 502 JSON error
// (504 on a timeout) and the call is recorded with that status: it
// counts as usage and appears among the endpoint's errors, since meterd
// cannot tell whether the API did the work before failing, and the quota
// slot was taken before forwarding.
func NewProxy(cfg ProxyConfig) (http.Handler, error) {
	if cfg.Meter == nil {
		return nil, errors.New("proxy: no meter")
	}
	u, err := url.Parse(cfg.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("proxy: upstream %q: want an absolute http(s) URL", cfg.Upstream)
	}
	g := newGate(cfg.Meter)
	g.keyHeader, g.keyQuery, g.stripKey = cfg.KeyHeader, cfg.KeyQuery, cfg.StripKey
	if cfg.Logger != nil {
		g.log = cfg.Logger
	}
	if cfg.Observer != nil {
		g.obs = cfg.Observer
	}
	p := &proxy{gate: g, upstream: u}
	tr := cfg.Transport
	if tr == nil {
		tr = newUpstreamTransport()
	}
	p.rp = &httputil.ReverseProxy{Rewrite: p.rewrite, ModifyResponse: p.modifyResponse,
		ErrorHandler: p.handleError, Transport: tr, BufferPool: copyBuffers,
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
	return p, nil
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isPreflight(r) {
		p.rp.ServeHTTP(w, r)
		return
	}
	r, c := p.gate.admit(w, r)
	if c == nil {
		return
	}
	p.rp.ServeHTTP(w, r)
}

// rewrite builds the upstream request: target URL, X-Forwarded-* (the
// client's chain is kept and extended), the account headers, and the key
// removed if so configured.
func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream)
	if prior, ok := pr.In.Header["X-Forwarded-For"]; ok {
		pr.Out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
	pr.Out.Header.Del(HeaderAccount)
	pr.Out.Header.Del(HeaderPlan)
	c := gatedCallFrom(pr.In.Context())
	if c == nil { // a CORS preflight
		return
	}
	res := c.resv.Result()
	pr.Out.Header.Set(HeaderAccount, res.AccountID)
	pr.Out.Header.Set(HeaderPlan, res.Plan)
	if p.gate.stripKey {
		p.gate.strip(pr.Out.Header, pr.Out.URL, c.src)
	}
}

// modifyResponse records the call once the upstream's headers are in and
// adds the rate-limit headers to them. It runs for 101 too, before the
// connection is handed over.
func (p *proxy) modifyResponse(res *http.Response) error {
	ctx := res.Request.Context()
	if c := gatedCallFrom(ctx); c != nil {
		p.gate.finish(ctx, c, res.Header, res.StatusCode, time.Since(c.start))
	}
	return nil
}

// handleError answers when the upstream could not be reached (or the
// client left): 502, 504 on a timeout, and records the call with it.
func (p *proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := http.StatusBadGateway, "bad_gateway", "the upstream API could not be reached"
	var ne net.Error
	switch {
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		status = statusClientClosed
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		status, code, msg = http.StatusGatewayTimeout, "upstream_timeout", "the upstream API did not answer in time"
	}
	if c := gatedCallFrom(r.Context()); c != nil {
		p.gate.finish(r.Context(), c, w.Header(), status, time.Since(c.start))
	}
	if status == statusClientClosed {
		return
	}
	p.gate.log.WarnContext(r.Context(), "upstream request failed", "upstream", p.upstream.Host, "error", err)
	var body errorBody
	body.Error.Code, body.Error.Message = code, msg
	writeJSON(w, status, body)
}

// newUpstreamTransport is a keep-alive pool sized for a sidecar in front
// of one API: enough idle connections that a burst of concurrent clients
// does not redial (net/http's default keeps 2 per host), no environment
// proxy, and no transparent gzip (the client's Accept-Encoding passes
// through untouched).
func newUpstreamTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 512
	t.IdleConnTimeout = 90 * time.Second
	t.DisableCompression = true
	return t
}

// copyBuffers recycles the proxy's 32 KiB body-copy buffers.
var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(p []byte) { b.p.Put(&p) }

// NewProxyServer returns the http.Server of the proxy listener. Unlike
// NewHTTPServer it sets no read or write deadline on whole requests, so
// long uploads, downloads and streams pass; headers must still arrive
// within 10 s and idle keep-alive connections close after 2 min.
func NewProxyServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
