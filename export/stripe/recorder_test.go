package stripe_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fault is what the recorder does with the next new (unreplayed) POST.
type fault int

const (
	faultNone fault = iota
	// fault500 answers 500 without creating anything.
	fault500
	// faultRefuse answers 400 invalid_request_error (no such customer) and
	// remembers that answer under the key, as Stripe does.
	faultRefuse
	// faultDrop creates the item, remembers the answer, then drops the
	// connection: the client never learns it succeeded.
	faultDrop
	// faultHang creates the item, remembers the answer, then stalls until
	// the client gives up.
	faultHang
)

// recorded is one request the recorder received.
type recorded struct {
	Method, Path, Key string
	Form              url.Values
}

// item is an invoice item the recorder created.
type item struct {
	ID, Customer, Currency, Description string
	Amount                              int64
	PeriodStart, PeriodEnd              int64
	Metadata                            map[string]string
}

// keyed is Stripe's memory of one idempotency key.
type keyed struct {
	params string
	status int
	body   []byte
}

// recorder plays Stripe's invoice item API over HTTP: it records every
// request with its idempotency key, replays the first answer for a
// repeated key (and refuses a reused key with other parameters), can fail
// on demand, can forget its keys, and can hold POSTs until released.
type recorder struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	requests []recorded
	items    []item
	keys     map[string]keyed
	faults   []fault
	// hold, when set, makes each POST signal entered and wait for release.
	hold    bool
	entered chan struct{}
	release chan struct{}
}

func newRecorder(tb testing.TB) *recorder {
	rec := &recorder{t: tb, keys: map[string]keyed{}, entered: make(chan struct{}, 16), release: make(chan struct{})}
	rec.srv = httptest.NewServer(http.HandlerFunc(rec.serve))
	tb.Cleanup(func() {
		rec.mu.Lock()
		if rec.hold {
			rec.hold = false
			close(rec.release)
		}
		rec.mu.Unlock()
		rec.srv.Close()
	})
	return rec
}

func (rec *recorder) URL() string { return rec.srv.URL }

// failNext queues faults for the next new POSTs.
func (rec *recorder) failNext(f ...fault) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.faults = append(rec.faults, f...)
}

// prune forgets every idempotency key, as Stripe does after about a day.
func (rec *recorder) prune() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.keys = map[string]keyed{}
}

// holdPosts makes POSTs wait until releasePosts.
func (rec *recorder) holdPosts() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.hold = true
}

func (rec *recorder) releasePosts() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.hold {
		rec.hold = false
		close(rec.release)
	}
}

// seedKey makes the recorder remember key with other parameters, as if
// it had been used for a different request.
func (rec *recorder) seedKey(key string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.keys[key] = keyed{params: "other=params", status: 200, body: []byte(`{}`)}
}

func (rec *recorder) snapshot() ([]recorded, []item) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recorded(nil), rec.requests...), append([]item(nil), rec.items...)
}

// posts returns the recorded POSTs.
func (rec *recorder) posts() []recorded {
	reqs, _ := rec.snapshot()
	var out []recorded
	for _, r := range reqs {
		if r.Method == http.MethodPost {
			out = append(out, r)
		}
	}
	return out
}

// itemsOf returns the items created for a customer.
func (rec *recorder) itemsOf(customer string) []item {
	_, items := rec.snapshot()
	var out []item
	for _, it := range items {
		if it.Customer == customer {
			out = append(out, it)
		}
	}
	return out
}

func (rec *recorder) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+testKey {
		writeStripeError(w, http.StatusUnauthorized, "invalid_request_error", "", "Invalid API Key provided")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeStripeError(w, http.StatusBadRequest, "invalid_request_error", "", err.Error())
		return
	}
	rec.mu.Lock()
	rec.requests = append(rec.requests, recorded{Method: r.Method, Path: r.URL.Path,
		Key: r.Header.Get("Idempotency-Key"), Form: r.PostForm})
	rec.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/invoiceitems":
		rec.create(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/invoiceitems":
		rec.list(w, r)
	default:
		writeStripeError(w, http.StatusNotFound, "invalid_request_error", "", "Unrecognized request URL")
	}
}

func (rec *recorder) create(w http.ResponseWriter, r *http.Request) {
	key, params := r.Header.Get("Idempotency-Key"), r.PostForm.Encode()
	if key == "" {
		rec.t.Errorf("POST %s without an Idempotency-Key", r.URL.Path)
	}
	if rec.waitIfHeld(r) {
		return
	}
	rec.mu.Lock()
	if k, ok := rec.keys[key]; ok {
		rec.mu.Unlock()
		if k.params != params {
			writeStripeError(w, http.StatusBadRequest, "idempotency_error", "",
				"Keys for idempotent requests can only be used with the same parameters they were first used with.")
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, k.status, k.body)
		return
	}
	f := faultNone
	if len(rec.faults) > 0 {
		f, rec.faults = rec.faults[0], rec.faults[1:]
	}
	switch f {
	case fault500:
		rec.mu.Unlock()
		writeStripeError(w, http.StatusInternalServerError, "api_error", "", "An unknown error occurred")
		return
	case faultRefuse:
		body := stripeErrorBody("invalid_request_error", "resource_missing", "No such customer: '"+r.PostForm.Get("customer")+"'")
		rec.keys[key] = keyed{params: params, status: http.StatusBadRequest, body: body}
		rec.mu.Unlock()
		writeRaw(w, http.StatusBadRequest, body)
		return
	}
	it := rec.newItemLocked(r.PostForm)
	body, _ := json.Marshal(itemJSON(it))
	rec.keys[key] = keyed{params: params, status: http.StatusOK, body: body}
	rec.mu.Unlock()
	rec.deliver(w, r, f, body)
}

// waitIfHeld blocks a POST while the recorder holds them; true means the
// client went away meanwhile.
func (rec *recorder) waitIfHeld(r *http.Request) bool {
	rec.mu.Lock()
	hold, release := rec.hold, rec.release
	rec.mu.Unlock()
	if !hold {
		return false
	}
	rec.entered <- struct{}{}
	select {
	case <-release:
		return false
	case <-r.Context().Done():
		return true
	}
}

func (rec *recorder) newItemLocked(form url.Values) item {
	amount, _ := strconv.ParseInt(form.Get("amount"), 10, 64)
	start, _ := strconv.ParseInt(form.Get("period[start]"), 10, 64)
	end, _ := strconv.ParseInt(form.Get("period[end]"), 10, 64)
	md := map[string]string{}
	for k, v := range form {
		if len(k) > len("metadata[]") && k[:9] == "metadata[" && k[len(k)-1] == ']' {
			md[k[9:len(k)-1]] = v[0]
		}
	}
	it := item{ID: fmt.Sprintf("ii_rec%d", len(rec.items)+1), Customer: form.Get("customer"), Currency: form.Get("currency"),
		Description: form.Get("description"), Amount: amount, PeriodStart: start, PeriodEnd: end, Metadata: md}
	rec.items = append(rec.items, it)
	return it
}

// deliver answers a created item, or loses the answer as the fault says.
func (rec *recorder) deliver(w http.ResponseWriter, r *http.Request, f fault, body []byte) {
	switch f {
	case faultDrop:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
			return
		}
	case faultHang:
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	writeRaw(w, http.StatusOK, body)
}

// list answers GET /v1/invoiceitems?customer=&limit=&starting_after=,
// newest first, paginated as Stripe does.
func (rec *recorder) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = 10
	}
	rec.mu.Lock()
	var matching []item
	for i := len(rec.items) - 1; i >= 0; i-- {
		if c := q.Get("customer"); c == "" || rec.items[i].Customer == c {
			matching = append(matching, rec.items[i])
		}
	}
	rec.mu.Unlock()
	if after := q.Get("starting_after"); after != "" {
		for i, it := range matching {
			if it.ID == after {
				matching = matching[i+1:]
				break
			}
		}
	}
	page, more := matching, false
	if len(page) > limit {
		page, more = page[:limit], true
	}
	data := make([]map[string]any, 0, len(page))
	for _, it := range page {
		data = append(data, itemJSON(it))
	}
	body, _ := json.Marshal(map[string]any{"object": "list", "url": "/v1/invoiceitems", "has_more": more, "data": data})
	writeRaw(w, http.StatusOK, body)
}

func itemJSON(it item) map[string]any {
	return map[string]any{"id": it.ID, "object": "invoiceitem", "amount": it.Amount, "currency": it.Currency,
		"customer": it.Customer, "description": it.Description, "metadata": it.Metadata, "livemode": false,
		"quantity": 1, "date": time.Now().Unix(), "period": map[string]int64{"start": it.PeriodStart, "end": it.PeriodEnd}}
}

func stripeErrorBody(typ, code, msg string) []byte {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"type": typ, "code": code, "message": msg}})
	return body
}

func writeStripeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeRaw(w, status, stripeErrorBody(typ, code, msg))
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
