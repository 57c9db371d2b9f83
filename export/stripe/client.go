package stripe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/meterd/meterd/meter"
	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/invoiceitem"
)

// Metadata keys on every invoice item; a lookup matches on account, period
// start and seq.
const (
	mdAccount      = "meterd_account_id"
	mdPeriodStart  = "meterd_period_start"
	mdPeriodEnd    = "meterd_period_end"
	mdSeq          = "meterd_seq"
	mdCalls        = "meterd_calls"
	mdCallsCovered = "meterd_calls_covered"
)

// client is the part of Stripe billing uses: create and list invoice items.
type client struct {
	items   invoiceitem.Client
	timeout time.Duration
}

func newClient(cfg Config) *client {
	bc := &stripego.BackendConfig{
		HTTPClient: cfg.HTTPClient,
		// Zero: stripe-go's own retries would bypass the intent's record of
		// attempts; the service retries, always with the intent's key.
		MaxNetworkRetries: stripego.Int64(0),
		LeveledLogger:     leveledLogger{cfg.Logger},
	}
	if cfg.APIBase != "" {
		bc.URL = stripego.String(cfg.APIBase)
	}
	backend := stripego.GetBackendWithConfig(stripego.APIBackend, bc)
	return &client{items: invoiceitem.Client{B: backend, Key: cfg.SecretKey}, timeout: cfg.RequestTimeout}
}

// create sends the intent as an invoice item with its idempotency key and
// returns Stripe's id.
func (c *client) create(ctx context.Context, it meter.BillingIntent) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	p := itemParams(it)
	p.Context = ctx
	p.SetIdempotencyKey(it.IdempotencyKey)
	item, err := c.items.New(p)
	if err != nil {
		return "", err
	}
	if item.ID == "" {
		return "", errors.New("stripe answered without an invoice item id")
	}
	return item.ID, nil
}

// itemParams builds the request from the intent alone, so every retry
// sends exactly the same parameters as the first attempt.
func itemParams(it meter.BillingIntent) *stripego.InvoiceItemParams {
	return &stripego.InvoiceItemParams{
		Customer:    stripego.String(it.CustomerID),
		Amount:      stripego.Int64(it.AmountCents),
		Currency:    stripego.String(it.Currency),
		Description: stripego.String(Description(it)),
		// Stripe's period end is inclusive; ours is exclusive.
		Period: &stripego.InvoiceItemPeriodParams{
			Start: stripego.Int64(it.PeriodStart.Unix()),
			End:   stripego.Int64(max(it.PeriodEnd.Unix()-1, it.PeriodStart.Unix())),
		},
		Metadata: map[string]string{
			mdAccount:      it.AccountID,
			mdPeriodStart:  it.PeriodStart.UTC().Format(time.RFC3339),
			mdPeriodEnd:    it.PeriodEnd.UTC().Format(time.RFC3339),
			mdSeq:          strconv.FormatUint(uint64(it.Seq), 10),
			mdCalls:        strconv.FormatInt(it.Calls, 10),
			mdCallsCovered: strconv.FormatInt(it.CallsCovered, 10),
		},
	}
}

// listPeriod returns every invoice item of the customer whose metadata
// names the account and period: what Stripe holds for it, whoever sent it
// and whatever the ledger remembers. It walks all the customer's items
// (no creation-time filter: after a restore the ledger cannot know when
// an item was made).
func (c *client) listPeriod(ctx context.Context, customer, account string, periodStart time.Time) ([]meter.StripeCharge, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*c.timeout)
	defer cancel()
	lp := &stripego.InvoiceItemListParams{Customer: stripego.String(customer)}
	lp.Limit = stripego.Int64(100)
	lp.Context = ctx
	start := periodStart.UTC().Format(time.RFC3339)
	var out []meter.StripeCharge
	iter := c.items.List(lp)
	for iter.Next() {
		ii := iter.InvoiceItem()
		if ii.Deleted || ii.Metadata[mdAccount] != account || ii.Metadata[mdPeriodStart] != start {
			continue
		}
		seq, err := strconv.ParseUint(ii.Metadata[mdSeq], 10, 32)
		if err != nil {
			continue // not one of ours: a hand-made item with copied metadata
		}
		covered, _ := strconv.ParseInt(ii.Metadata[mdCallsCovered], 10, 64)
		out = append(out, meter.StripeCharge{StripeID: ii.ID, AccountID: account, PeriodStart: periodStart.UTC(),
			Seq: uint32(seq), AmountCents: ii.Amount, CallsCovered: covered})
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list invoice items of %s: %w", customer, err)
	}
	return out, nil
}

// idempotencyError reports whether Stripe answered that the key was used
// by a request with other parameters: a definite answer that this request
// created nothing.
func idempotencyError(err error) bool {
	var se *stripego.Error
	return errors.As(err, &se) && se.Type == stripego.ErrorTypeIdempotency
}

// refused reports whether Stripe definitely did not create the item and
// never will for this request: a 400, 402 or 404 other than an
// idempotency error. Everything else (network errors, timeouts, 401/403,
// 409, 429, 5xx, idempotency errors) leaves the outcome open.
func refused(err error) bool {
	var se *stripego.Error
	if !errors.As(err, &se) || se.Type == stripego.ErrorTypeIdempotency {
		return false
	}
	switch se.HTTPStatusCode {
	case http.StatusBadRequest, http.StatusPaymentRequired, http.StatusNotFound:
		return true
	}
	return false
}

// errorText is a short, key-free description of a Stripe error.
func errorText(err error) string {
	var se *stripego.Error
	if errors.As(err, &se) {
		s := fmt.Sprintf("stripe %d %s", se.HTTPStatusCode, se.Type)
		if se.Code != "" {
			s += " " + string(se.Code)
		}
		if se.Msg != "" {
			s += ": " + se.Msg
		}
		return s
	}
	return err.Error()
}

// Description is the invoice line text, e.g. "API overage: 5,000 calls,
// 2026-11-01 – 2026-12-01".
func Description(it meter.BillingIntent) string {
	noun := "calls"
	if it.Calls == 1 {
		noun = "call"
	}
	period := it.PeriodStart.UTC().Format(time.DateOnly) + " – " + it.PeriodEnd.UTC().Format(time.DateOnly)
	if it.Late {
		return fmt.Sprintf("API overage: %s %s committed after the period %s had closed, billed with the next period",
			groupDigits(it.Calls), noun, period)
	}
	return fmt.Sprintf("API overage: %s %s, %s", groupDigits(it.Calls), noun, period)
}

// groupDigits formats n with comma thousands separators.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	start := 0
	if n < 0 {
		start = 1
	}
	out := []byte(s[:start])
	digits := s[start:]
	for i := range len(digits) {
		if i > 0 && (len(digits)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, digits[i])
	}
	return string(out)
}

// leveledLogger routes stripe-go's own messages to debug level: the
// service logs every outcome itself.
type leveledLogger struct{ log *slog.Logger }

func (l leveledLogger) Debugf(format string, v ...any) { l.emit(format, v) }
func (l leveledLogger) Infof(format string, v ...any)  { l.emit(format, v) }
func (l leveledLogger) Warnf(format string, v ...any)  { l.emit(format, v) }
func (l leveledLogger) Errorf(format string, v ...any) { l.emit(format, v) }

func (l leveledLogger) emit(format string, v []any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, v...), "component", "stripe-go")
	}
}
