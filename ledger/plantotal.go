package ledger

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// Per-plan daily totals: every call is also added to the in-memory
// aggregates under the plan in force when it was decided, and a checkpoint
// writes them to plan\0 day in bucketPlanDaily (overlay.go). The plan is
// not part of the stored event record, so calls replayed at open after a
// crash (those after the last checkpoint) have no plan and show in the
// chart's "other" column; the all-account totals still count them. They make the console's calls-by-plan chart a read of
// plans x days records, whatever the number of accounts. Ledgers written
// before these totals existed simply have no rows for those days; the
// daily_total bucket still has them.

type planK struct {
	plan string
	day  uint32
}

func planDailyKey(plan string, day uint32) []byte {
	b := make([]byte, 0, len(plan)+1+4)
	return binary.BigEndian.AppendUint32(append(append(b, plan...), 0), day)
}

func (a *aggs) planRecords() []keyed {
	out := make([]keyed, 0, len(a.plan))
	for k, u := range a.plan {
		out = append(out, keyed{key: planDailyKey(k.plan, k.day), usage: u})
	}
	return out
}

// PlanDailyUsage returns, for each plan named, its calls per UTC day from
// `from` to `to` inclusive, oldest first, empty days included.
func (l *Ledger) PlanDailyUsage(ctx context.Context, plans []string, from, to time.Time) (map[string][]meter.DailyUsage, error) {
	first, last := dayNumber(from), dayNumber(to)
	out := make(map[string][]meter.DailyUsage, len(plans))
	if last < first {
		return out, nil
	}
	for _, p := range plans {
		days := make([]meter.DailyUsage, 0, last-first+1)
		for d := first; d <= last; d++ {
			days = append(days, meter.DailyUsage{Day: dayTime(d)})
		}
		out[p] = days
	}
	err := l.viewAggs(ctx, func(tx *bolt.Tx, deltas []*aggs) error {
		for _, a := range deltas {
			for k, u := range a.plan {
				if days, ok := out[k.plan]; ok && k.day >= first && k.day <= last {
					days[k.day-first].Usage.Add(*u)
				}
			}
		}
		b := tx.Bucket(bucketPlanDaily)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for _, p := range plans {
			prefix := append([]byte(p), 0)
			for k, v := c.Seek(planDailyKey(p, first)); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
				d := binary.BigEndian.Uint32(k[len(prefix):])
				if d > last {
					break
				}
				out[p][d-first].Usage.Add(decodeUsage(v))
			}
		}
		return nil
	})
	return out, err
}
