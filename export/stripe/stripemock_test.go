package stripe_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/meter"
)

// captureTransport keeps every response body from Stripe, so the test
// sees what stripe-mock made of each request.
type captureTransport struct {
	mu        sync.Mutex
	responses []capturedResponse
}

type capturedResponse struct {
	method, path string
	status       int
	body         []byte
}

func (c *captureTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c.mu.Lock()
	c.responses = append(c.responses, capturedResponse{r.Method, r.URL.Path, resp.StatusCode, body})
	c.mu.Unlock()
	return resp, nil
}

func (c *captureTransport) all() []capturedResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]capturedResponse(nil), c.responses...)
}

// The business plan's example against stripe-mock, which validates every
// request against Stripe's OpenAPI spec: 105,000 calls on Pro are one
// well-formed 500-cent invoice item.
func TestService_StripeMock(t *testing.T) {
	base := os.Getenv("METER_TEST_STRIPE_MOCK_URL")
	if base == "" {
		t.Skip("METER_TEST_STRIPE_MOCK_URL is not set: install stripe-mock (go install github.com/stripe/stripe-mock@v0.203.0), " +
			"run `stripe-mock -http-addr 127.0.0.1:12111` and set METER_TEST_STRIPE_MOCK_URL=http://127.0.0.1:12111")
	}
	f := newFixture(t, "", nov1.Add(19*24*time.Hour))
	capture := &captureTransport{}
	f.svc, f.reg = f.service(billing.Config{APIBase: base,
		HTTPClient: &http.Client{Transport: capture, Timeout: 10 * time.Second}})
	f.account("pro1", "pro", "cus_123")
	f.account("free1", "free", "cus_free")
	f.account("ent1", "enterprise", "cus_ent")
	f.calls("pro1", 105_000)
	f.calls("free1", 50)
	f.calls("ent1", 200_000%1000)

	preview, err := f.svc.Preview(t.Context())
	if err != nil || preview.ChargedCents != 500 || len(capture.all()) != 0 {
		t.Fatalf("preview: %v %s, %d requests to Stripe", err, preview.String(), len(capture.all()))
	}
	rep := f.run()
	if !rep.OK() || rep.Charges != 1 || rep.ChargedCents != 500 {
		t.Fatalf("run: %s %+v", rep.String(), rep.Lines)
	}
	responses := capture.all()
	if len(responses) != 1 || responses[0].method != http.MethodPost || responses[0].status != http.StatusOK {
		t.Fatalf("responses = %+v", responses)
	}
	var ii struct {
		ID, Object, Currency, Customer, Description string
		Amount                                      int64
		Period                                      struct{ Start, End int64 }
	}
	if err := json.Unmarshal(responses[0].body, &ii); err != nil {
		t.Fatal(err)
	}
	want := "API overage: 5,000 calls, 2026-11-01 – 2026-12-01"
	if !strings.HasPrefix(ii.ID, "ii_") || ii.Object != "invoiceitem" || ii.Amount != 500 || ii.Currency != "usd" ||
		ii.Customer != "cus_123" || ii.Description != want || ii.Period.Start != nov1.Unix() || ii.Period.End != dec1.Unix()-1 {
		t.Fatalf("invoice item = %+v", ii)
	}
	intents := f.intents()
	if len(intents) != 1 || intents[0].Status != meter.IntentDone || intents[0].StripeID != ii.ID {
		t.Fatalf("intents = %+v", intents)
	}

	f.clock.Set(dec1.Add(meter.DefaultBillingGrace)) // the closing run: nothing left, the period is final
	rep = f.run()
	if rep.Charges != 0 || len(capture.all()) != 1 || !f.billed("pro1").Final {
		t.Fatalf("closing run: %s, %d requests", rep.String(), len(capture.all()))
	}

	// The reconcile report lists the customer's invoice items: stripe-mock
	// accepts the request as Stripe would (it keeps no items, so the
	// ledger's 500 cents show as a difference).
	recon, err := f.svc.Reconcile(t.Context(), "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	responses = capture.all()
	last := responses[len(responses)-1]
	if last.method != http.MethodGet || last.status != http.StatusOK || len(recon.Lines) != 1 || recon.Lines[0].LedgerBilledCents != 500 {
		t.Fatalf("reconcile: %+v, last response %d %s", recon, last.status, last.method)
	}
}
