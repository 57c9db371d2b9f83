package meter

import (
	"context"
	"fmt"
	"strconv"
)

// A scheduled plan change (a downgrade at period end) is put in force in
// memory when its time comes: by the call that rolls the account into the
// new period, by the overview, or at load. The stored account keeps it
// pending until the change is written, and that write carries the
// account.plan_changed notice in the same transaction, so the notice is
// stored exactly once: before the write, a restart applies the change
// again in memory and owes the notice again; after it, nothing is pending.

// scheduledPlanNotice is the notice of from's scheduled change taking
// effect, as to, in period. Its id is derived
// from the account and the instant the change was due, so the same
// change always makes the same notice.
func scheduledPlanNotice(from, to Account, period Period, calls int64) *Notice {
	at := from.PendingPlanAt.UTC()
	return &Notice{ID: "ntc_" + to.ID + "_" + strconv.FormatInt(at.Unix(), 10) + "_scheduled_" + string(NoticePlanChanged),
		Type: NoticePlanChanged, Time: at, AccountID: to.ID, PeriodStart: period.Start, Plan: to.Plan, Calls: calls,
		Detail: map[string]string{"old_plan": from.Plan, "new_plan": to.Plan, "scheduled": "true"}}
}

// markUnsaved remembers that id's state holds a plan change not yet
// stored.
func (m *Meter) markUnsaved(ids ...string) {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	for _, id := range ids {
		m.unsaved[id] = struct{}{}
	}
}

// SaveDuePlanChanges puts every scheduled plan change that is due in
// force and stores each account so changed together with its
// account.plan_changed notice (while notices are on). meterd calls it
// periodically; calling it again after an error retries what is left.
func (m *Meter) SaveDuePlanChanges(ctx context.Context) error {
	m.applyDuePlanChanges(m.Now())
	m.pendingMu.Lock()
	ids := make([]string, 0, len(m.unsaved))
	for id := range m.unsaved {
		ids = append(ids, id)
	}
	clear(m.unsaved)
	m.pendingMu.Unlock()
	for i, id := range ids {
		if err := m.saveDuePlanChange(ctx, id); err != nil {
			m.markUnsaved(ids[i:]...)
			return fmt.Errorf("save plan change of %s: %w", id, err)
		}
	}
	return nil
}

func (m *Meter) saveDuePlanChange(ctx context.Context, id string) error {
	m.adminMu.Lock()
	defer m.adminMu.Unlock()
	st, ok := m.account(id)
	if !ok {
		return nil
	}
	st.mu.Lock()
	a := st.acct
	st.mu.Unlock()
	return m.storeAccount(ctx, st, a, nil)
}

// storeAccount stores a, the state's account after an admin change, with
// ns and, if the state owes one, the notice of its scheduled plan change
// put in force (a holds that change, since it was read from the state).
// adminMu is held.
func (m *Meter) storeAccount(ctx context.Context, st *accountState, a Account, ns []Notice) error {
	st.mu.Lock()
	due := st.planDue
	st.mu.Unlock()
	if due != nil && m.notices.cfg.Load() != nil {
		ns = append([]Notice{*due}, ns...)
	}
	if err := m.putAccount(ctx, a, ns); err != nil {
		return err
	}
	if due != nil {
		st.mu.Lock()
		if st.planDue == due {
			st.planDue = nil
		}
		st.mu.Unlock()
	}
	return nil
}
