package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/meterd/meterd/meter"
)

// Biller runs overage billing; export/stripe's Service implements it.
type Biller interface {
	// Bill runs billing (or a dry run) as opts say. It fails with
	// meter.ErrBillingBusy while another run is in progress.
	Bill(ctx context.Context, opts meter.BillingOptions) (meter.BillingReport, error)
	// Charges lists the billing intents of periods starting in month
	// ("YYYY-MM").
	Charges(ctx context.Context, month string) ([]meter.BillingIntent, error)
	// Reconcile compares, per account period starting in month, the
	// ledger's billed total with Stripe's and what is due. It fails with
	// meter.ErrBillingDisabled without a Stripe key.
	Reconcile(ctx context.Context, month string) (meter.ReconcileReport, error)
}

var (
	errBillingDisabled = newError(http.StatusServiceUnavailable, "billing_disabled",
		"billing is disabled: no Stripe secret key is configured")
	errBillingBusy = newError(http.StatusConflict, "billing_in_progress",
		"another billing run is in progress; retry later")
)

// billingRoutes serves the billing endpoints. It lives beside Server so
// that billing can be registered after New, once the biller exists.
type billingRoutes struct {
	s       *Server
	b       Biller
	cron    tokenHash
	hasCron bool
}

// RegisterBilling adds the billing routes; call it once. A nil b means
// billing is disabled: the routes answer 503 billing_disabled (after
// authentication). A biller without a Stripe key previews and lists, and
// answers meter.ErrBillingDisabled (503) to whatever needs Stripe. cronSecret, when set, is accepted besides the admin
// token as the bearer of POST /api/cron/process-overage, for external
// schedulers that should not hold the admin token.
func (s *Server) RegisterBilling(b Biller, cronSecret string) {
	br := &billingRoutes{s: s, b: b, cron: hashToken(cronSecret), hasCron: cronSecret != ""}
	s.biller = b
	s.router.HandleFunc("/api/cron/process-overage", br.requireCron(br.handleProcessOverage)).Methods(http.MethodPost)
	s.router.HandleFunc("/api/admin/billing/preview", s.requireAdmin(br.handlePreview)).Methods(http.MethodGet)
	s.router.HandleFunc("/api/admin/billing/charges", s.requireAdmin(br.handleCharges)).Methods(http.MethodGet)
	s.router.HandleFunc("/api/admin/billing/reconcile", s.requireAdmin(br.handleReconcile)).Methods(http.MethodGet)
}

// requireCron accepts the admin token or the cron secret.
func (br *billingRoutes) requireCron(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := bearer(r)
		if t == "" || !(br.s.adminToken.matches(t) || (br.hasCron && br.cron.matches(t))) {
			br.s.writeError(w, r, errUnauthorized)
			return
		}
		h(w, r)
	}
}

// billingResponse is a report with its verdict spelled out.
type billingResponse struct {
	meter.BillingReport
	OK bool `json:"ok"`
}

// handleProcessOverage runs billing now: ?period=YYYY-MM limits it to one
// month, ?dry_run=true only reports. A run that completes answers 200 even
// if some charges failed ("ok": false, "errors" > 0): they are retried by
// the next run. The run is not cancelled if the caller disconnects, so a
// scheduler's timeout cannot cut a charge in half.
func (br *billingRoutes) handleProcessOverage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dry, err := parseDryRun(q.Get("dry_run"))
	if err != nil {
		br.s.writeError(w, r, err)
		return
	}
	opts := meter.BillingOptions{Period: q.Get("period"), DryRun: dry}
	br.bill(context.WithoutCancel(r.Context()), w, r, opts)
}

// parseDryRun accepts what strconv.ParseBool accepts (1, t, TRUE, true,
// 0, f, false, ...) and "yes"/"no" in any case; absent means false.
// Anything else is a 400: a typo must never turn a preview into a charge.
func parseDryRun(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "":
		return false, nil
	case "yes", "y", "on":
		return true, nil
	case "no", "n", "off":
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, meter.Invalid("dry_run", "must be a boolean (true, false, 1, 0, yes, no), not %q", v)
	}
	return b, nil
}

// handleReconcile answers GET /api/admin/billing/reconcile?period=YYYY-MM
// (default: the current month).
func (br *billingRoutes) handleReconcile(w http.ResponseWriter, r *http.Request) {
	period, ok := br.month(w, r)
	if !ok {
		return
	}
	if rep, err := br.b.Reconcile(r.Context(), period); err != nil {
		br.s.writeError(w, r, err)
	} else {
		writeJSON(w, http.StatusOK, rep)
	}
}

// month is the period a per-month billing query is about: ?period=YYYY-MM,
// by default the current month. It answers 503 billing_disabled itself,
// and returns false, when there is no biller.
func (br *billingRoutes) month(w http.ResponseWriter, r *http.Request) (string, bool) {
	if br.b == nil {
		br.s.writeError(w, r, errBillingDisabled)
		return "", false
	}
	if period := r.URL.Query().Get("period"); period != "" {
		return period, true
	}
	return br.s.meter.Now().Format("2006-01"), true
}

func (br *billingRoutes) handlePreview(w http.ResponseWriter, r *http.Request) {
	br.bill(r.Context(), w, r, meter.BillingOptions{DryRun: true, Period: r.URL.Query().Get("period")})
}

func (br *billingRoutes) bill(ctx context.Context, w http.ResponseWriter, r *http.Request, opts meter.BillingOptions) {
	if br.b == nil {
		br.s.writeError(w, r, errBillingDisabled)
		return
	}
	rep, err := br.b.Bill(ctx, opts)
	if err != nil {
		br.s.writeError(w, r, err)
		return
	}
	if rep.Lines == nil {
		rep.Lines = []meter.BillingLine{}
	}
	writeJSON(w, http.StatusOK, billingResponse{BillingReport: rep, OK: rep.OK()})
}

// chargesResponse lists one month's billing intents.
type chargesResponse struct {
	Period  string                `json:"period"`
	Charges []meter.BillingIntent `json:"charges"`
	// BilledCents sums the done charges; PendingCents the open ones.
	BilledCents  int64 `json:"billed_cents"`
	PendingCents int64 `json:"pending_cents"`
}

// handleCharges answers GET /api/admin/billing/charges?period=YYYY-MM
// (default: the current month).
func (br *billingRoutes) handleCharges(w http.ResponseWriter, r *http.Request) {
	period, ok := br.month(w, r)
	if !ok {
		return
	}
	charges, err := br.b.Charges(r.Context(), period)
	if err != nil {
		br.s.writeError(w, r, err)
		return
	}
	out := chargesResponse{Period: period, Charges: charges}
	if out.Charges == nil {
		out.Charges = []meter.BillingIntent{}
	}
	for _, c := range charges {
		switch {
		case c.Status == meter.IntentDone:
			out.BilledCents += c.AmountCents
		case c.Status.Open():
			out.PendingCents += c.AmountCents
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// billingBusy names the lease holder, when the store said who it is, so a
// cron caller hitting any node of a cluster learns which node is billing
// and until when its lease runs.
func billingBusy(err error) *apiError {
	_, held, ok := strings.Cut(err.Error(), "lease held by ")
	if !ok {
		return errBillingBusy
	}
	return newError(http.StatusConflict, "billing_in_progress",
		"another billing run is in progress (lease held by "+held+"); retry later")
}
