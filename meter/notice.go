package meter

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// NoticeType names a thing that happened that somebody outside may want
// to hear about (a webhook event type).
type NoticeType string

// The notice types meterd emits.
const (
	// NoticeThresholdReached: the period's calls reached a percentage of
	// the plan's limit, or its overage cost reached a spend threshold.
	NoticeThresholdReached NoticeType = "usage.threshold_reached"
	// NoticeLimitReached: a hard plan denied its first call of the period.
	NoticeLimitReached NoticeType = "usage.limit_reached"
	// NoticeOverageStarted: a soft plan made its first overage call of the
	// period.
	NoticeOverageStarted NoticeType = "usage.overage_started"
	// NoticeChargeCreated / NoticeChargeFailed: a billing charge was made
	// or was refused by the payment provider.
	NoticeChargeCreated NoticeType = "billing.charge_created"
	NoticeChargeFailed  NoticeType = "billing.charge_failed"
	// NoticePeriodClosed: a billing period ended and its usage is final.
	NoticePeriodClosed NoticeType = "billing.period_closed"
	// NoticePlanChanged: an account moved to another plan.
	NoticePlanChanged NoticeType = "account.plan_changed"
)

// NoticeTypes lists every type, for validation and documentation.
var NoticeTypes = []NoticeType{NoticeThresholdReached, NoticeLimitReached, NoticeOverageStarted,
	NoticeChargeCreated, NoticeChargeFailed, NoticePeriodClosed, NoticePlanChanged}

// ValidNoticeType reports whether t is one of NoticeTypes.
func ValidNoticeType(t NoticeType) bool { return slices.Contains(NoticeTypes, t) }

// Notice is one domain event bound for webhook endpoints. Its ID is
// derived from what caused it (account, period, type, threshold...), so
// the same crossing always carries the same id: the ledger refuses a
// second notice with an id it already holds, and receivers dedupe on it.
type Notice struct {
	ID          string     `json:"id"`
	Type        NoticeType `json:"type"`
	Time        time.Time  `json:"time"`
	AccountID   string     `json:"account_id"`
	PeriodStart time.Time  `json:"period_start"`
	Plan        string     `json:"plan,omitempty"`
	// The numbers that caused it, as they stood just after the cause.
	Calls        int64 `json:"calls"`
	Limit        int64 `json:"limit,omitempty"`
	Overage      int64 `json:"overage_calls,omitempty"`
	OverageCents int64 `json:"overage_cost_cents,omitempty"`
	// Threshold is the percentage of the limit (usage thresholds) or the
	// overage cents (spend thresholds) that was crossed.
	Threshold int64  `json:"threshold,omitempty"`
	Unit      string `json:"unit,omitempty"` // "percent" or "cents"
	// Detail carries type-specific strings (charge id, old and new plan,
	// failure reason).
	Detail map[string]string `json:"detail,omitempty"`
	// Seq is the outbox sequence the ledger gave the notice (0 until it is
	// stored); EventSeq the metered call that caused it, if any.
	Seq      uint64 `json:"-"`
	EventSeq uint64 `json:"event_seq,omitempty"`
}

// NoticeList is the notices one call caused.
type NoticeList []Notice

// Thresholds are the lines whose crossing is announced.
type Thresholds struct {
	// Percent of the plan's limit (default 80 and 100).
	Percent []int64 `json:"percent" yaml:"percent"`
	// SpendCents are overage-cost lines in cents (default none).
	SpendCents []int64 `json:"spend_cents" yaml:"spend_cents"`
}

// DefaultThresholds announce 80 % and 100 % of the limit.
func DefaultThresholds() Thresholds { return Thresholds{Percent: []int64{80, 100}} }

// NoticeConfig says which thresholds apply to an account: its own, else
// its plan's, else Default. It is immutable once given to the meter.
type NoticeConfig struct {
	Default  Thresholds            `json:"default" yaml:"default"`
	Plans    map[string]Thresholds `json:"plans" yaml:"plans"`
	Accounts map[string]Thresholds `json:"accounts" yaml:"accounts"`
}

// Validate checks every threshold is positive.
func (c *NoticeConfig) Validate() error {
	all := []Thresholds{c.Default}
	for _, t := range c.Plans {
		all = append(all, t)
	}
	for _, t := range c.Accounts {
		all = append(all, t)
	}
	for _, t := range all {
		for _, v := range append(slices.Clone(t.Percent), t.SpendCents...) {
			if v <= 0 {
				return Invalid("thresholds", "must be positive, got %d", v)
			}
		}
	}
	return nil
}

// noticeRules is a NoticeConfig resolved for the hot path: pointers, so
// finding an account's thresholds copies and allocates nothing.
type noticeRules struct {
	def      *Thresholds
	plans    map[string]*Thresholds
	accounts map[string]*Thresholds
}

func newNoticeRules(c *NoticeConfig) *noticeRules {
	r := &noticeRules{def: &c.Default}
	r.plans, r.accounts = pointers(c.Plans), pointers(c.Accounts)
	return r
}

func pointers(m map[string]Thresholds) map[string]*Thresholds {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*Thresholds, len(m))
	for k, v := range m {
		out[k] = &v
	}
	return out
}

func (r *noticeRules) forAccount(account, plan string) *Thresholds {
	if t, ok := r.accounts[account]; ok {
		return t
	}
	if t, ok := r.plans[plan]; ok {
		return t
	}
	return r.def
}

// Counts are the figures a crossing is judged on, before and after a call.
type Counts struct {
	Calls, Overage, Denied int64
}

// crossings returns the notices a change of counts from before to after
// causes on plan p: a line counts as crossed when before was under it and
// after is at or over it, so calls already past a line (after a restart,
// the counters having been reloaded from the ledger) never fire it again.
// It is pure and allocation-free when nothing is crossed.
func crossings(before, after Counts, p Plan, t *Thresholds) []Notice {
	var out []Notice
	if p.Unlimited() {
		return nil
	}
	for _, pct := range t.Percent {
		line := pct * p.Limit // compared in hundredths to stay in integers
		if before.Calls*100 < line && after.Calls*100 >= line {
			out = append(out, Notice{Type: NoticeThresholdReached, Threshold: pct, Unit: "percent"})
		}
	}
	if p.Hard && before.Denied == 0 && after.Denied > 0 {
		out = append(out, Notice{Type: NoticeLimitReached})
	}
	if !p.Hard && before.Overage == 0 && after.Overage > 0 {
		out = append(out, Notice{Type: NoticeOverageStarted})
	}
	if len(t.SpendCents) > 0 && after.Overage > before.Overage {
		b, a := OverageCostCents(before.Overage, p.OverageMicros), OverageCostCents(after.Overage, p.OverageMicros)
		for _, c := range t.SpendCents {
			if b < c && a >= c {
				out = append(out, Notice{Type: NoticeThresholdReached, Threshold: c, Unit: "cents"})
			}
		}
	}
	return out
}

// Crossings is crossings for callers outside the package (tests, tools).
func Crossings(before, after Counts, p Plan, t Thresholds) []Notice {
	return crossings(before, after, p, &t)
}

// stampCrossing fills in who, when and the numbers, and derives the id
// from the crossing itself.
func stampCrossing(n *Notice, account string, p Plan, period time.Time, now time.Time, after Counts) {
	n.AccountID, n.Plan, n.PeriodStart, n.Time = account, p.Name, period, now
	n.Calls, n.Limit, n.Overage = after.Calls, p.Limit, after.Overage
	n.OverageCents = OverageCostCents(after.Overage, p.OverageMicros)
	n.ID = crossingID(n)
}

// crossingID is stable per crossing: account, period, type, threshold and
// the limit it was measured against (a plan change mid-period makes a new
// line, hence a new id).
func crossingID(n *Notice) string {
	b := make([]byte, 0, 64)
	b = append(b, "ntc_"...)
	b = append(b, n.AccountID...)
	b = append(b, '_')
	b = strconv.AppendInt(b, n.PeriodStart.Unix(), 10)
	b = append(b, '_')
	b = append(b, n.Type...)
	if n.Threshold > 0 {
		b = append(b, '_')
		b = strconv.AppendInt(b, n.Threshold, 10)
		b = append(b, n.Unit[:1]...)
	}
	b = append(b, "_l"...)
	b = strconv.AppendInt(b, n.Limit, 10)
	return string(b)
}

// NoticeSink stores notices durably (the ledger's outbox) for delivery.
// Notices caused by a metered call do not go through it: they ride on the
// call's Event and are stored in the same transaction.
type NoticeSink interface {
	PutNotices(ctx context.Context, ns []Notice) error
}

// NoticeEmitter takes notices not caused by a call; *Meter implements it
// (and drops them while notices are off).
type NoticeEmitter interface {
	Emit(ctx context.Context, ns ...Notice) error
}

// noticeState is the meter's notice wiring: nil rules mean off, and the
// hot path then does a nil check and nothing more.
type noticeState struct {
	cfg  atomic.Pointer[noticeRules]
	sink NoticeSink
}

// SetNotices turns crossing notices on (cfg non-nil) or off. sink stores
// the notices not caused by a call (plan changes, billing); it may be nil.
// Call it before the meter serves calls: the sink is not swapped safely
// under load (the thresholds are).
func (m *Meter) SetNotices(cfg *NoticeConfig, sink NoticeSink) {
	m.notices.sink = sink
	if cfg == nil {
		m.notices.cfg.Store(nil)
		return
	}
	c := *cfg // the caller keeps its copy
	m.notices.cfg.Store(newNoticeRules(&c))
}

// countsLocked is the state's figures for crossing detection.
func (s *accountState) countsLocked() Counts {
	return Counts{Calls: s.calls, Overage: s.overage, Denied: s.denied}
}

// noticesLocked returns the notices the change from before to the
// state's current counts causes (nil for none). Called under s.mu; no I/O.
func (m *Meter) noticesLocked(s *accountState, before Counts, now time.Time) *NoticeList {
	cfg := m.notices.cfg.Load()
	if cfg == nil {
		return nil
	}
	after := s.countsLocked()
	ns := crossings(before, after, s.plan, cfg.forAccount(s.id, s.plan.Name))
	for i := range ns {
		stampCrossing(&ns[i], s.id, s.plan, s.period.Start, now, after)
	}
	if len(s.owed) > 0 {
		ns, s.owed = append(s.owed, ns...), nil
	}
	if len(ns) == 0 {
		return nil
	}
	l := NoticeList(ns)
	return &l
}

// Emit stores notices not caused by a metered call (billing, plan
// changes). Their ids must be derived from their cause, so emitting the
// same one twice (a retried charge) stores it once. It does nothing while
// notices are off.
func (m *Meter) Emit(ctx context.Context, ns ...Notice) error {
	if m.notices.cfg.Load() == nil || m.notices.sink == nil {
		return nil
	}
	for i := range ns {
		if ns[i].ID == "" || ns[i].Type == "" {
			return Invalid("notice", "id and type are required")
		}
		if ns[i].Time.IsZero() {
			ns[i].Time = m.now().UTC()
		}
	}
	return m.notices.sink.PutNotices(ctx, ns)
}

// oweLocked keeps the notices of a call whose record failed that the
// account has crossed all the same (calls decided after it hold the count
// at or past the line, so no later call crosses it again): the account's
// next call carries them into its own transaction. The others are
// dropped: the count is back under their line, and the call that crosses
// it again makes the same notice (same id).
func (s *accountState) oweLocked(ns *NoticeList) {
	if ns == nil {
		return
	}
	c := s.countsLocked()
	for _, n := range *ns {
		if n.PeriodStart.Equal(s.period.Start) && stillReached(n, c, s.plan) {
			s.owed = append(s.owed, n)
		}
	}
}

func stillReached(n Notice, c Counts, p Plan) bool {
	switch {
	case n.Type == NoticeLimitReached:
		return c.Denied > 0
	case n.Type == NoticeOverageStarted:
		return c.Overage > 0
	case n.Unit == "cents":
		return OverageCostCents(c.Overage, p.OverageMicros) >= n.Threshold
	}
	return c.Calls*100 >= n.Threshold*n.Limit
}

// BillingNotice builds a billing.* notice whose id is derived from the
// charge's idempotency key (or the period, for period_closed), so a retry
// of the same charge never produces a second notice.
func BillingNotice(t NoticeType, account string, periodStart time.Time, key string, cents int64, detail map[string]string) Notice {
	return Notice{ID: "ntc_" + account + "_" + strconv.FormatInt(periodStart.Unix(), 10) + "_" + string(t) + "_" + key,
		Type: t, AccountID: account, PeriodStart: periodStart, OverageCents: cents, Detail: detail}
}

// planNotice returns the account.plan_changed notice for st becoming a,
// or nil when the plan stays or notices are off. adminMu is held, so the
// plan read here is the one being replaced.
func (m *Meter) planNotice(st *accountState, a Account) []Notice {
	if m.notices.cfg.Load() == nil {
		return nil
	}
	st.mu.Lock()
	oldPlan, period, calls := st.acct.Plan, st.period, st.calls
	st.mu.Unlock()
	if oldPlan == a.Plan {
		return nil
	}
	now := m.now().UTC()
	return []Notice{{ID: "ntc_" + a.ID + "_" + strconv.FormatInt(now.UnixNano(), 10) + "_" + string(NoticePlanChanged),
		Type: NoticePlanChanged, Time: now, AccountID: a.ID, PeriodStart: period.Start, Plan: a.Plan, Calls: calls,
		Detail: map[string]string{"old_plan": oldPlan, "new_plan": a.Plan}}}
}

// AccountNoticeStore is a Store that can store an account and notices
// in one transaction (the ledger can).
type AccountNoticeStore interface {
	PutAccountNotices(ctx context.Context, a Account, ns []Notice) error
}

// putAccount stores a with its notices: atomically when the store can,
// else one after the other.
func (m *Meter) putAccount(ctx context.Context, a Account, ns []Notice) error {
	if len(ns) == 0 {
		return m.store.PutAccount(ctx, a)
	}
	if s, ok := m.store.(AccountNoticeStore); ok {
		return s.PutAccountNotices(ctx, a, ns)
	}
	if err := m.store.PutAccount(ctx, a); err != nil {
		return err
	}
	return m.Emit(ctx, ns...)
}
