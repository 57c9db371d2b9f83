package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client is a meterd API client. Create it with New; it is safe for
// concurrent use.
type Client struct {
	base         *url.URL
	adminToken   string
	serviceToken string
	http         *http.Client
	// Retries is how many times a failed attempt is retried (default 3);
	// Backoff the wait before the first retry, doubled each time (default
	// 100ms), unless the answer's Retry-After asks for longer (capped at
	// MaxBackoff, default 5s).
	retries    int
	backoff    time.Duration
	maxBackoff time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithAdminToken sends the admin token on admin and usage calls.
func WithAdminToken(t string) Option { return func(c *Client) { c.adminToken = t } }

// WithServiceToken sends meterd's service token on /v1/* calls.
func WithServiceToken(t string) Option { return func(c *Client) { c.serviceToken = t } }

// WithHTTPClient replaces the default http.Client (10s timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets the retry count and the first backoff; 0 retries turns
// retrying off.
func WithRetries(n int, backoff time.Duration) Option {
	return func(c *Client) { c.retries, c.backoff = n, backoff }
}

// New returns a client for the meterd at baseURL, e.g.
// "http://127.0.0.1:8480".
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host:port", baseURL)
	}
	c := &Client{base: u, http: &http.Client{Timeout: 10 * time.Second}, retries: 3,
		backoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL is the meterd the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// Error is an answer of meterd other than success: its status and the
// code and message of the JSON error body.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("meterd: %d %s: %s", e.Status, e.Code, e.Message)
}

// IsCode reports whether err is a meterd *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// auth says which credential a request carries.
type auth int

const (
	authNone auth = iota
	authAdmin
	authService
)

// request is one API call.
type request struct {
	method string
	path   string
	query  url.Values
	body   any
	auth   auth
	apiKey string // sent as X-API-Key when set
	header http.Header
	// gotHeader, if set, receives the answer's header.
	gotHeader *http.Header
	// idempotent: safe to send again after a transport error (the first
	// attempt may have been applied). A 503 is retried regardless: meterd
	// applies nothing when it answers 503.
	idempotent bool
}

// do sends req with retries and decodes a 2xx JSON answer into out (nil:
// discard). A non-2xx answer is an *Error, also returned with the raw
// body for callers that read a denial's fields.
func (c *Client) do(ctx context.Context, req request, out any) (int, []byte, error) {
	var body []byte
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			return 0, nil, fmt.Errorf("client: encode: %w", err)
		}
		body = b
	}
	wait := c.backoff
	for attempt := 0; ; attempt++ {
		status, raw, err := c.once(ctx, req, body)
		retry, after := c.shouldRetry(req, status, err)
		if !retry || attempt >= c.retries || ctx.Err() != nil {
			if err == nil && status >= 200 && status < 300 && out != nil && len(raw) > 0 {
				if jerr := json.Unmarshal(raw, out); jerr != nil {
					return status, raw, fmt.Errorf("client: decode %s %s: %w", req.method, req.path, jerr)
				}
			}
			return status, raw, err
		}
		if after < wait {
			after = wait
		}
		select {
		case <-ctx.Done():
			return status, raw, err
		case <-time.After(min(after, c.maxBackoff)):
		}
		wait *= 2
	}
}

// shouldRetry decides from an attempt's outcome.
func (c *Client) shouldRetry(req request, status int, err error) (bool, time.Duration) {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status == http.StatusServiceUnavailable, e.RetryAfter
	case err != nil:
		return req.idempotent, 0
	case status == http.StatusBadGateway || status == http.StatusGatewayTimeout:
		return req.idempotent, 0
	}
	return false, 0
}

// once sends one attempt.
func (c *Client) once(ctx context.Context, req request, body []byte) (int, []byte, error) {
	u := *c.base
	u.Path += req.path
	u.RawQuery = req.query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), rd)
	if err != nil {
		return 0, nil, fmt.Errorf("client: %w", err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	hr.Header.Set("Accept", "application/json")
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	switch {
	case req.auth == authAdmin && c.adminToken != "":
		hr.Header.Set("Authorization", "Bearer "+c.adminToken)
	case req.auth == authService && c.serviceToken != "":
		hr.Header.Set("Authorization", "Bearer "+c.serviceToken)
	}
	if req.apiKey != "" {
		hr.Header.Set("X-API-Key", req.apiKey)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return 0, nil, fmt.Errorf("client: %s %s: %w", req.method, req.path, err)
	}
	defer resp.Body.Close()
	if req.gotHeader != nil {
		*req.gotHeader = resp.Header
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("client: read %s %s: %w", req.method, req.path, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, raw, errorFrom(resp, raw)
	}
	return resp.StatusCode, raw, nil
}

// errorFrom builds an *Error from a non-2xx answer.
func errorFrom(resp *http.Response, raw []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else {
		e.Code, e.Message = "http_"+strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(raw))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// NewIdempotencyID returns a random id for Track and Events.
func NewIdempotencyID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "cli_" + hex.EncodeToString(b)
}
