package ledger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// LatePeriod is a finalized billing period whose counter holds overage
// calls committed after it was finalized and not billed yet: the next
// billing run bills them as a late charge. It is not a problem, but an
// auditor should see it.
type LatePeriod struct {
	Account     string    `json:"account"`
	PeriodStart time.Time `json:"period_start"`
	Calls       int64     `json:"calls"`
}

// scanLateCalls lists the finalized periods with late, unbilled overage
// (meter.LateCalls), in one read of the billing states.
func (v *verifier) scanLateCalls(ctx context.Context, l *Ledger) error {
	return l.viewAggs(ctx, func(tx *bolt.Tx, deltas []*aggs) error {
		states, usage := tx.Bucket(bucketBillState), tx.Bucket(bucketUsage)
		if states == nil {
			return nil
		}
		return states.ForEach(func(k, raw []byte) error {
			var st meter.BillingState
			if len(k) < 9 || json.Unmarshal(raw, &st) != nil || !st.Final {
				return nil
			}
			period := time.Unix(int64(binary.BigEndian.Uint64(k)), 0).UTC()
			account := string(k[8 : len(k)-1])
			c := decodeCounter(account, period, usage.Get(counterKey(account, period)))
			for _, d := range deltas { // events after the last checkpoint
				c.Add(d.counter(account, period))
			}
			if n := meter.LateCalls(c, st); n > 0 {
				v.rep.LateCalls = append(v.rep.LateCalls, LatePeriod{Account: account, PeriodStart: period, Calls: n})
			}
			return nil
		})
	})
}
