package meter

import (
	"context"
	"time"
)

// Call is one API call to meter.
type Call struct {
	// APIKey (plaintext) or AccountID identifies the caller; APIKey wins.
	APIKey    string
	AccountID string
	// Endpoint is a request path or a template; it is folded to a
	// template and capped per account.
	Endpoint string
	Method   string
	// Status and LatencyMicros describe the API's answer, when known.
	Status        int
	LatencyMicros int64
	// ID is the caller's idempotency id ("" for none): a retry with the
	// same id gets the first answer back and counts nothing.
	ID string
}

// Result is the meter's answer for one call.
type Result struct {
	Allowed   bool
	Duplicate bool
	Overage   bool
	AccountID string
	Plan      string
	// Limit is 0 and Unlimited true for plans without a limit.
	Limit     int64
	Unlimited bool
	// Soft is true for plans that allow calls past the limit as overage.
	Soft bool
	// Upgrade names a plan that offers more calls than this one ("" if
	// none does), for the message of a denial.
	Upgrade   string
	Remaining int64
	// Calls is the period's allowed calls after this one.
	Calls int64
	// Reset is the end of the current period.
	Reset time.Time
	// Period is the billing period the call was counted in.
	Period Period
	// AccountStatus is the account's status (StatusActive, ...): a call
	// of a suspended or deleted account is denied whatever its quota.
	AccountStatus string
	// EventID is the ledger id of the recorded event ("" when the answer
	// was given before the commit, in async mode).
	EventID string
}

// Blocked reports whether the call was denied because the account is
// suspended or deleted, not for its quota.
func (r Result) Blocked() bool {
	return r.AccountStatus == StatusSuspended || r.AccountStatus == StatusDeleted
}

// Track decides one call and records it. A denied call is not an error:
// Result.Allowed is false. Errors mean the call could not be metered
// (unknown key, bad input, ledger failure) and nothing was counted.
func (m *Meter) Track(ctx context.Context, c Call) (Result, error) {
	st, key, err := m.resolve(c)
	if err != nil {
		return Result{}, err
	}
	ev, err := m.newEvent(c, st.id, key)
	if err != nil {
		return Result{}, err
	}
	if c.ID == "" {
		return m.record(ctx, st, ev, !m.async)
	}
	return m.trackOnce(ctx, st, ev)
}

// resolve finds the account behind a key or an account id.
func (m *Meter) resolve(c Call) (*accountState, string, error) {
	if c.APIKey != "" {
		k, err := m.lookupKey(c.APIKey)
		if err != nil {
			return nil, "", err
		}
		st, ok := m.account(k.AccountID)
		if !ok {
			return nil, "", ErrUnknownKey
		}
		return st, k.ID, nil
	}
	if c.AccountID == "" {
		return nil, "", ErrUnknownKey
	}
	st, ok := m.account(c.AccountID)
	if !ok {
		return nil, "", ErrAccountNotFound
	}
	return st, "", nil
}

// lookupKey maps a plaintext key to its record; unknown, malformed and
// revoked keys are indistinguishable to the caller.
func (m *Meter) lookupKey(plaintext string) (*APIKey, error) {
	if !ValidKeyFormat(plaintext) {
		return nil, ErrUnknownKey
	}
	h := HashKey(plaintext)
	m.mu.RLock()
	k, ok := m.byHash[h]
	m.mu.RUnlock()
	if !ok {
		return nil, ErrUnknownKey
	}
	return k, nil
}

// AccountForKey returns the account id a plaintext key belongs to.
func (m *Meter) AccountForKey(plaintext string) (string, error) {
	k, err := m.lookupKey(plaintext)
	if err != nil {
		return "", err
	}
	return k.AccountID, nil
}

func (m *Meter) newEvent(c Call, account, keyID string) (*Event, error) {
	method, ok := NormalizeMethod(c.Method)
	if !ok {
		return nil, Invalid("method", "must be an HTTP method such as GET")
	}
	if c.Endpoint == "" {
		return nil, Invalid("endpoint", "is required")
	}
	if c.Status < 0 || c.Status > 999 {
		return nil, Invalid("status", "must be an HTTP status code")
	}
	if c.LatencyMicros < 0 || c.LatencyMicros > int64(time.Hour/time.Microsecond) {
		return nil, Invalid("latency_ms", "must be between 0 and 3600000")
	}
	if len(c.ID) > 128 {
		return nil, Invalid("id", "must be at most 128 bytes")
	}
	return &Event{AccountID: account, KeyID: keyID, Endpoint: m.folder.Fold(c.Endpoint),
		Method: method, Status: c.Status, LatencyMicros: c.LatencyMicros, IdempotencyKey: c.ID}, nil
}

// record decides the call under the account's lock, then hands the event
// to the store. If the store fails, the decision is undone: the call is
// neither counted nor acknowledged. A denial never waits for a commit
// (denialWaits): a client hammering an exhausted key must not cost an
// fsync per request.
func (m *Meter) record(ctx context.Context, st *accountState, ev *Event, wait bool) (Result, error) {
	now := m.now().UTC()
	g, err := m.takeAllowance(ctx, st, now)
	if err != nil {
		return Result{}, err
	}
	res, _ := m.decideEvent(st, ev, now, g)
	wait = wait && (res.Allowed || denialWaits(ev))
	if err := m.appendEvent(ctx, st, ev, wait); err != nil {
		return Result{}, err
	}
	if wait {
		res.EventID = ev.ID()
	}
	return res, nil
}

// denialWaits reports whether a denied call waits for its commit: only
// when it carries an idempotency id, so a retry finds the first answer on
// disk. Other denials are answered at once; the writer coalesces a group's
// denials of one account, key, endpoint, method, status and day into one
// record carrying their number (never sampled: Event.Calls counts each;
// see ledger/coalesce.go) and retries a failed commit of them like any
// answered write, so denied counts stay exact.
func denialWaits(ev *Event) bool { return ev.IdempotencyKey != "" }

func decisionOf(allowed bool) Decision {
	if allowed {
		return Allowed
	}
	return Denied
}

// resultLocked builds the answer from the state just after a decision.
func resultLocked(st *accountState, allowed, overage bool) Result {
	res := Result{Allowed: allowed, Overage: overage, AccountID: st.id, Plan: st.plan.Name,
		Limit: max(st.plan.Limit, 0), Unlimited: st.plan.Unlimited(), Soft: !st.plan.Hard && !st.plan.Unlimited(),
		Remaining: Remaining(st.plan, st.calls), Calls: st.calls, Reset: st.period.End, Period: st.period,
		AccountStatus: st.acct.Status()}
	if !allowed && st.plans != nil {
		res.Upgrade = st.plans.UpgradeFor(st.plan.Name)
	}
	return res
}
