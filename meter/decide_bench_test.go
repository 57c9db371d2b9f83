package meter

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDecide measures the in-memory decision alone — key lookup
// (SHA-256 and map), period check, atomic check-and-count — from parallel
// goroutines over 1,000 accounts. It is the part of every call that runs
// under a lock; the ledger append is measured in package ledger.
func BenchmarkDecide(b *testing.B) {
	m := &Meter{accounts: map[string]*accountState{}, byHash: map[KeyHash]*APIKey{}, now: time.Now}
	plan, _ := DefaultPlans().Get("pro")
	now := time.Now().UTC()
	keys := make([]string, 1000)
	for i := range keys {
		id := fmt.Sprintf("acct-%d", i)
		a := Account{ID: id, Plan: "pro"}
		m.accounts[id] = &accountState{id: a.ID, acct: a, plan: plan, period: PeriodAt(time.Time{}, now)}
		plaintext, _, hash, _ := NewKey()
		m.byHash[hash] = &APIKey{ID: "k" + id, AccountID: id, Hash: hash}
		keys[i] = plaintext
	}
	var n atomic.Int64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k, err := m.lookupKey(keys[n.Add(1)%int64(len(keys))])
			if err != nil {
				b.Error(err)
				return
			}
			st, _ := m.account(k.AccountID)
			st.mu.Lock()
			st.rollLocked(m.now().UTC())
			st.decideLocked()
			st.mu.Unlock()
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
}
