package meter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"gopkg.in/yaml.v3"
)

// Names of the built-in plans.
const (
	planFree       = "free"
	planPro        = "pro"
	planEnterprise = "enterprise"
)

// Plan is a priced quota: how many calls a period includes and what happens
// past them.
type Plan struct {
	Name string `json:"name" yaml:"name"`
	// Limit is the number of calls included per period; 0 means unlimited.
	Limit int64 `json:"limit" yaml:"limit"`
	// Hard denies calls past Limit (429); otherwise they are allowed and
	// counted as overage.
	Hard bool `json:"hard" yaml:"hard"`
	// OverageMicros is the price of one overage call in micro-dollars
	// (1000 = $0.001).
	OverageMicros int64 `json:"overage_micros" yaml:"overage_micros"`
	// MonthlyPriceCents is the subscription price per period, in cents.
	MonthlyPriceCents int64 `json:"monthly_price_cents" yaml:"monthly_price_cents"`
	// PricePerAccount makes the account's MonthlyPriceCents the price
	// (enterprise contracts are negotiated one by one).
	PricePerAccount bool `json:"price_per_account" yaml:"price_per_account"`
}

// Unlimited reports whether the plan has no call limit.
func (p Plan) Unlimited() bool { return p.Limit <= 0 }

// Price returns the monthly price in cents that a pays on this plan: the
// account's own price when the plan is priced per account or the account
// carries an override, else the plan's price. a may be nil.
func (p Plan) Price(a *Account) int64 {
	if a != nil && (p.PricePerAccount || a.MonthlyPriceCents > 0) {
		return max(a.MonthlyPriceCents, 0)
	}
	return p.MonthlyPriceCents
}

// Plans is the set of configured plans. It is immutable once built, so it
// is safe for concurrent use; reloading builds a new one.
type Plans struct {
	byName map[string]Plan
	names  []string
	// upgrade maps a plan to the plan a denied customer is pointed to.
	upgrade map[string]string
}

// builtinPlanOrder is the order the built-in plans are listed in, ahead of any
// plans a plans file adds.
var builtinPlanOrder = []string{planFree, planPro, planEnterprise}

// DefaultPlans returns the plans of the business plan: free (1,000 calls,
// hard), pro (100,000 calls, $0.001 per overage call, $29) and enterprise
// (unlimited, priced per account).
func DefaultPlans() *Plans {
	return newPlansFrom(defaultPlanMap())
}

func defaultPlanMap() map[string]Plan {
	return map[string]Plan{
		planFree:       {Name: planFree, Limit: 1000, Hard: true},
		planPro:        {Name: planPro, Limit: 100000, OverageMicros: 1000, MonthlyPriceCents: 2900},
		planEnterprise: {Name: planEnterprise, PricePerAccount: true},
	}
}

// newPlansFrom computes the listing order once, so Names is cheap and stable.
func newPlansFrom(m map[string]Plan) *Plans {
	var added []string
	for name := range m {
		if !slices.Contains(builtinPlanOrder, name) {
			added = append(added, name)
		}
	}
	slices.Sort(added)
	names := append(slices.Clone(builtinPlanOrder), added...)
	p := &Plans{byName: m, names: names, upgrade: map[string]string{}}
	for _, name := range names {
		p.upgrade[name] = p.findUpgrade(m[name])
	}
	return p
}

// UpgradeFor names the plan to suggest to a customer of plan whose calls
// are refused: one that takes nothing away and offers more calls, plans
// with a listed price before per-account ones, the cheapest first. It is
// "" when no configured plan offers more.
func (p *Plans) UpgradeFor(plan string) string { return p.upgrade[plan] }

func (p *Plans) findUpgrade(from Plan) string {
	best, found := Plan{}, false
	for _, name := range p.names {
		c := p.byName[name]
		if c.Name == "" || c.Name == from.Name || IsDowngrade(from, c) || !offersMore(from, c) {
			continue
		}
		if !found || upgradeLess(c, best) {
			best, found = c, true
		}
	}
	return best.Name
}

// offersMore reports whether to allows calls that from refuses.
func offersMore(from, to Plan) bool {
	switch {
	case from.Unlimited():
		return false
	case to.Unlimited():
		return true
	}
	return to.Limit > from.Limit || (from.Hard && !to.Hard)
}

func upgradeLess(a, b Plan) bool {
	if a.PricePerAccount != b.PricePerAccount {
		return !a.PricePerAccount
	}
	return a.MonthlyPriceCents < b.MonthlyPriceCents
}

// Get returns the plan called name.
func (p *Plans) Get(name string) (Plan, bool) {
	plan, ok := p.byName[name]
	return plan, ok
}

// Names lists the plan names: free, pro, enterprise, then added plans in
// lexical order. The caller may modify the returned slice.
func (p *Plans) Names() []string { return slices.Clone(p.names) }

// Default returns the plan given to new accounts that do not name one.
func (p *Plans) Default() string { return planFree }

// plansFile is the on-disk shape of a plans file.
type plansFile struct {
	// Pointers tell an empty entry ("pro:") apart from a deliberate one.
	Plans map[string]*Plan `yaml:"plans"`
}

// ParsePlans reads a plans file (YAML, or JSON, which YAML accepts) and
// returns the default plans with its entries applied: an entry replaces the
// default plan of the same name wholly, a new name adds a plan. Unknown
// fields are errors, so a typo cannot silently fall back to a default.
// Invalid values are reported as *ValidationError naming the field, e.g.
// "plans.pro.limit: must be >= 0"; all of them are reported at once.
func ParsePlans(data []byte) (*Plans, error) {
	var f plansFile
	if err := decodePlansFile(data, &f); err != nil {
		return nil, fmt.Errorf("parse plans: %w", err)
	}
	m := defaultPlanMap()
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(f.Plans)) {
		plan, err := checkPlanEntry(name, f.Plans[name])
		errs = append(errs, err...)
		m[name] = plan
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return newPlansFrom(m), nil
}

// decodePlansFile decodes one YAML document, rejecting unknown fields. An
// empty document means "no overrides".
func decodePlansFile(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

// checkPlanEntry validates one entry of a plans file and names it.
func checkPlanEntry(name string, p *Plan) (Plan, []error) {
	field := "plans." + name
	if !validPlanName(name) {
		return Plan{}, []error{Invalid(field, "plan name must match ^[a-z][a-z0-9_-]{0,31}$")}
	}
	if p == nil {
		return Plan{}, []error{Invalid(field, "must be a mapping of plan fields")}
	}
	if p.Name != "" && p.Name != name {
		return Plan{}, []error{Invalid(field+".name", "must be %q or omitted", name)}
	}
	plan := *p
	plan.Name = name
	return plan, validatePlan(field, plan)
}

// validatePlan checks the rules a plan must obey to be billable without
// surprises; field prefixes each error's field name.
func validatePlan(field string, p Plan) []error {
	var errs []error
	fail := func(name, msg string) { errs = append(errs, Invalid(field+"."+name, "%s", msg)) }
	if p.Limit < 0 {
		fail("limit", "must be >= 0")
	}
	if p.OverageMicros < 0 {
		fail("overage_micros", "must be >= 0")
	}
	if p.MonthlyPriceCents < 0 {
		fail("monthly_price_cents", "must be >= 0")
	}
	if p.Hard && p.Limit == 0 {
		fail("limit", "must be > 0 for a hard plan (0 means unlimited)")
	}
	if p.OverageMicros > 0 && (p.Hard || p.Limit <= 0) {
		fail("overage_micros", "needs a soft plan (hard: false) with limit > 0")
	}
	return errs
}

// validPlanName reports whether name matches ^[a-z][a-z0-9_-]{0,31}$.
// Names end up in URLs, metrics and Stripe descriptions, so keep them plain.
func validPlanName(name string) bool {
	if len(name) < 1 || len(name) > 32 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// LoadPlans reads and parses the plans file at path.
func LoadPlans(path string) (*Plans, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load plans: %w", err)
	}
	plans, err := ParsePlans(data)
	if err != nil {
		return nil, fmt.Errorf("load plans %s: %w", path, err)
	}
	return plans, nil
}
