package stripe

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero values of Config.
const (
	DefaultCurrency       = "usd"
	DefaultSchedule       = "0 0 * * *" // daily at 00:00 UTC
	DefaultRequestTimeout = 30 * time.Second
	DefaultLeaseTTL       = 15 * time.Second
	DefaultGrace          = meter.DefaultBillingGrace
	DefaultRetryInterval  = time.Minute
	DefaultKeyRetention   = 24 * time.Hour
	DefaultLookback       = 35 * 24 * time.Hour
)

// consecutiveFailuresLimit is how many charges in a row may end without an
// answer from Stripe before a run stops sending: when Stripe is down, the
// rest would only wait out their timeouts.
const consecutiveFailuresLimit = 3

var (
	// ErrNoSecretKey: a run that would call Stripe has no secret key.
	ErrNoSecretKey = fmt.Errorf("stripe billing: %w", meter.ErrBillingDisabled)
	// ErrNoStore: New was called without Config.Store or Config.Accounts.
	ErrNoStore = errors.New("stripe billing: store and accounts are required")
)

// Accounts lists accounts with their plans; *meter.Meter implements it.
type Accounts interface {
	Quotas() []meter.Quota
}

// Config configures a Service. Store and Accounts are required; without a
// SecretKey only dry runs and listings work.
type Config struct {
	// SecretKey is the Stripe secret key (sk_live_..., sk_test_...).
	SecretKey string
	// APIBase overrides Stripe's API URL, e.g. a stripe-mock or a test
	// recorder (default: Stripe's).
	APIBase string
	// Currency of the invoice items, lower case ISO 4217 (default usd).
	Currency string
	Store    meter.BillingStore
	Accounts Accounts
	// Owner prefixes this process's name in billing lease records (a
	// cluster node's id), so a busy answer says which node bills.
	Owner string
	// Now is the clock (default time.Now); tests freeze and advance it.
	Now    func() time.Time
	Logger *slog.Logger
	// Notices receives billing.* notices for webhooks (nil: none).
	Notices meter.NoticeEmitter
	// Registerer receives the billing metrics (nil: not registered).
	Registerer prometheus.Registerer
	// HTTPClient talks to Stripe (default: a client with RequestTimeout).
	HTTPClient *http.Client
	// RequestTimeout bounds one Stripe request (default 30s). A request
	// that times out has an unknown outcome and is retried with its key.
	RequestTimeout time.Duration
	// LeaseTTL is how long a run holds the billing lease without renewing
	// it (default 15s). A live run renews it every third of that; a run
	// that crashed blocks others for at most this.
	LeaseTTL time.Duration
	// Grace is how long after a period ends it stays open to late
	// commits (default 1h): the closing charge is made by the first run
	// after the end, and the period is finalized by the first run after
	// the grace. Calls committed later still are billed by a late charge.
	Grace time.Duration
	// RetryInterval is how often open intents are retried after start-up
	// until they resolve (default 1m).
	RetryInterval time.Duration
	// KeyRetention is how long Stripe is trusted to remember an
	// idempotency key (default 24h). An intent first sent longer ago is
	// looked up by its metadata before it is sent again.
	KeyRetention time.Duration
	// Lookback is how long after its end a period is still billed by
	// scheduled runs (default 35 days); older periods with unbilled
	// overage are listed as skipped and can be billed with an explicit
	// period.
	Lookback time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Store == nil || c.Accounts == nil {
		return c, ErrNoStore
	}
	if c.Currency == "" {
		c.Currency = DefaultCurrency
	}
	if err := CheckCurrency(c.Currency); err != nil {
		return c, err
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.RequestTimeout = orDefault(c.RequestTimeout, DefaultRequestTimeout)
	c.LeaseTTL = orDefault(c.LeaseTTL, DefaultLeaseTTL)
	c.Grace = orDefault(c.Grace, DefaultGrace)
	c.RetryInterval = orDefault(c.RetryInterval, DefaultRetryInterval)
	c.KeyRetention = orDefault(c.KeyRetention, DefaultKeyRetention)
	c.Lookback = orDefault(c.Lookback, DefaultLookback)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.RequestTimeout}
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Currencies whose smallest unit is not a hundredth (Stripe's list of
// zero- and three-decimal currencies). meterd prices in cents, so it
// refuses them rather than bill 100× too much (or 10× too little).
var (
	zeroDecimal  = "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf"
	threeDecimal = "bhd jod kwd omr tnd"
)

// CheckCurrency accepts a lower-case ISO 4217 code whose minor unit is a
// cent (two decimals), the only kind meterd's amounts are correct for.
func CheckCurrency(s string) error {
	if !validCurrency(s) {
		return fmt.Errorf("stripe billing: currency %q is not a lower-case ISO 4217 code", s)
	}
	if strings.Contains(zeroDecimal, s) || strings.Contains(threeDecimal, s) {
		return fmt.Errorf("stripe billing: currency %q does not have two decimals; meterd prices overage in hundredths "+
			"and would bill it wrongly (use a two-decimal currency such as usd or eur)", s)
	}
	return nil
}

// validCurrency accepts three lower-case letters, as Stripe wants them.
func validCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}
