package ledger

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// This file holds Verify's comparisons of stored records (counters, daily
// rows, daily totals, accounts, keys) with the tallies of the event scan
// in verify.go.

// scanBucket walks a bucket in chunks of verifyChunk keys, one read
// transaction each. Every transaction first catches up with the events
// committed since the last one, so a record row meets can be compared with
// exactly the events tallied. since is the snapshot at which the chunk's
// first key was chosen (by the previous transaction): a key created behind
// the scan after it is missed.
func (v *verifier) scanBucket(ctx context.Context, l *Ledger, name []byte, row func(tx *bolt.Tx, k, val []byte, since uint64)) error {
	var from []byte
	since := v.snap
	for done := false; !done; {
		err := l.view(ctx, func(tx *bolt.Tx) error {
			snap, err := v.catchUp(tx)
			if err != nil {
				return err
			}
			defer func() { since = snap }()
			c := tx.Bucket(name).Cursor()
			k, val := c.First()
			if from != nil {
				k, val = c.Seek(from)
			}
			for n := 0; k != nil; k, val = c.Next() {
				if n == verifyChunk {
					from = bytes.Clone(k)
					return nil
				}
				n++
				row(tx, k, val, since)
			}
			done = true
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// acctScan is the usage scan's state within one account, whose keys are
// contiguous: counters, then daily rows, then per-endpoint rows. Rows
// created behind the scan after start are missed, so comparisons are only
// trusted for days no event touched since.
type acctScan struct {
	id    string
	start uint64
	daily map[uint32]meter.Usage
	ends  map[uint32]*meter.Usage
}

func (v *verifier) scanUsage(ctx context.Context, l *Ledger) error {
	v.usageStart = v.snap
	if err := v.scanBucket(ctx, l, bucketUsage, v.usageRow); err != nil {
		return err
	}
	v.finishAccount()
	return nil
}

func (v *verifier) usageRow(tx *bolt.Tx, k, val []byte, since uint64) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || i+1 >= len(k) {
		v.rep.add(Problem{Kind: ProblemUndecodable, At: fmt.Sprintf("%q", k), Message: "usage key without account and kind"})
		return
	}
	account, kind, rest := string(k[:i]), k[i+1], k[i+2:]
	if account != v.acct.id {
		v.finishAccount()
		v.acct = acctScan{id: account, start: since, daily: map[uint32]meter.Usage{}, ends: map[uint32]*meter.Usage{}}
		v.requireAccount(tx, account, "usage row")
	}
	switch {
	case kind == kindCounter && len(rest) == 8 && (len(val) == 1+4*8 || len(val) == 1+6*8):
		period := time.Unix(int64(binary.BigEndian.Uint64(rest)), 0).UTC()
		v.counterRow(decodeCounter(account, period, val))
	case kind == kindDaily && len(rest) == 4 && len(val) == 1+7*8:
		v.dailyRow(account, binary.BigEndian.Uint32(rest), decodeUsage(val))
	case kind == kindEndpoint && len(rest) > 4 && len(val) == 1+7*8:
		day := binary.BigEndian.Uint32(rest)
		usageOf(v.acct.ends, day).Add(decodeUsage(val))
	default:
		v.rep.add(Problem{Kind: ProblemUndecodable, Account: account, At: fmt.Sprintf("%q", k),
			Message: fmt.Sprintf("usage record of kind %q with a %d-byte key and a %d-byte value", kind, len(k), len(val))})
	}
}

func (v *verifier) counterRow(got meter.Counter) {
	if !v.checkable(got.PeriodStart) {
		v.rep.Counters.Unchecked++
		return
	}
	v.rep.Counters.Checked++
	k := counterK{got.AccountID, got.PeriodStart.Unix()}
	t := v.counters[k]
	if t == nil {
		t = &counterTally{c: meter.Counter{AccountID: got.AccountID, PeriodStart: got.PeriodStart}}
		v.counters[k] = t
	}
	t.checked = true
	v.compareCounter(got, t.c)
}

func (v *verifier) compareCounter(got, want meter.Counter) {
	if got.Calls == want.Calls && got.Overage == want.Overage && got.Denied == want.Denied &&
		got.OverageMicros == want.OverageMicros && got.UnpricedOverage == want.UnpricedOverage && got.LastCallAt.Equal(want.LastCallAt) {
		return
	}
	v.rep.add(Problem{Kind: ProblemCounter, Account: got.AccountID, At: got.PeriodStart.Format(time.RFC3339),
		Message: fmt.Sprintf("counter holds calls=%d overage=%d overage_micros=%d denied=%d last_call=%s; its events say calls=%d overage=%d overage_micros=%d denied=%d last_call=%s",
			got.Calls, got.Overage, got.OverageMicros, got.Denied, got.LastCallAt.Format(time.RFC3339Nano),
			want.Calls, want.Overage, want.OverageMicros, want.Denied, want.LastCallAt.Format(time.RFC3339Nano))})
}

func (v *verifier) dailyRow(account string, day uint32, u meter.Usage) {
	v.acct.daily[day] = u
	usageOf(v.dayTotal, day).Add(u)
	if !v.checkable(dayTime(day)) {
		v.rep.Days.Unchecked++
		return
	}
	v.rep.Days.Checked++
	k := acctK{account, day}
	t := v.days[k]
	if t == nil {
		t = &usageTally{}
		v.days[k] = t
	}
	t.checked = true
	v.compareDaily(account, day, u, t.u)
}

func (v *verifier) compareDaily(account string, day uint32, got, want meter.Usage) {
	if got == want {
		return
	}
	v.rep.add(Problem{Kind: ProblemDaily, Account: account, At: dayTime(day).Format(time.DateOnly),
		Message: fmt.Sprintf("daily row holds %s; its events say %s", usageString(got), usageString(want))})
}

// finishAccount checks that the account's per-endpoint rows add up to its
// daily rows, day by day.
func (v *verifier) finishAccount() {
	a := v.acct
	for _, day := range slices.Sorted(maps.Keys(a.daily)) {
		d, e := a.daily[day], meter.Usage{}
		if sum := a.ends[day]; sum != nil {
			e = *sum
		}
		if e != d {
			v.mismatch(day, a.start, Problem{Kind: ProblemEndpointSum, Account: a.id,
				At: dayTime(day).Format(time.DateOnly), Message: fmt.Sprintf("per-endpoint rows add up to %s; the daily row holds %s",
					usageString(e), usageString(d))})
		}
	}
	for _, day := range slices.Sorted(maps.Keys(a.ends)) {
		if _, ok := a.daily[day]; !ok {
			v.mismatch(day, a.start, Problem{Kind: ProblemEndpointSum, Account: a.id, At: dayTime(day).Format(time.DateOnly),
				Message: fmt.Sprintf("per-endpoint rows add up to %s; there is no daily row", usageString(*a.ends[day]))})
		}
	}
}

// mismatch reports p unless calls of that day were committed after the
// earliest snapshot involved: then the records were read at different
// moments and cannot be compared.
func (v *verifier) mismatch(day uint32, snap uint64, p Problem) {
	if v.dayTouch[day] > snap {
		v.rep.Busy++
		return
	}
	v.rep.add(p)
}

// scanDailyTotal compares each day's total with the sum of the accounts'
// daily rows.
func (v *verifier) scanDailyTotal(ctx context.Context, l *Ledger) error {
	seen := map[uint32]bool{}
	err := v.scanBucket(ctx, l, bucketDailyTotal, func(_ *bolt.Tx, k, val []byte, _ uint64) {
		if len(k) != 4 || len(val) != 1+7*8 {
			v.rep.add(Problem{Kind: ProblemUndecodable, At: fmt.Sprintf("%x", k), Message: "daily_total record"})
			return
		}
		day, got := binary.BigEndian.Uint32(k), decodeUsage(val)
		seen[day] = true
		var sum meter.Usage
		if p := v.dayTotal[day]; p != nil {
			sum = *p
		}
		if sum != got {
			v.mismatch(day, v.usageStart, Problem{Kind: ProblemDailyTotal, At: dayTime(day).Format(time.DateOnly),
				Message: fmt.Sprintf("daily_total holds %s; the accounts' daily rows add up to %s", usageString(got), usageString(sum))})
		}
	})
	for _, day := range slices.Sorted(maps.Keys(v.dayTotal)) {
		if !seen[day] {
			v.rep.add(Problem{Kind: ProblemDailyTotal, At: dayTime(day).Format(time.DateOnly),
				Message: fmt.Sprintf("no daily_total row; the accounts' daily rows add up to %s", usageString(*v.dayTotal[day]))})
		}
	}
	return err
}

// checkLeftovers looks up the counters and daily rows that events imply
// but the scans did not meet: missing, or created behind the scan.
func (v *verifier) checkLeftovers(ctx context.Context, l *Ledger) error {
	var counters []counterK
	for k, t := range v.counters {
		if !t.checked {
			counters = append(counters, k)
		}
	}
	var days []acctK
	for k, t := range v.days {
		if !t.checked {
			days = append(days, k)
		}
	}
	slices.SortFunc(counters, func(a, b counterK) int {
		return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.period, b.period))
	})
	slices.SortFunc(days, func(a, b acctK) int {
		return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.day, b.day))
	})
	for len(counters) > 0 || len(days) > 0 {
		err := l.view(ctx, func(tx *bolt.Tx) error {
			if _, err := v.catchUp(tx); err != nil {
				return err
			}
			b := tx.Bucket(bucketUsage)
			n := min(len(counters), verifyChunk)
			for _, k := range counters[:n] {
				period := time.Unix(k.period, 0).UTC()
				v.rep.Counters.Checked++
				v.compareCounter(decodeCounter(k.account, period, b.Get(counterKey(k.account, period))), v.counters[k].c)
			}
			counters = counters[n:]
			n = min(len(days), verifyChunk)
			for _, k := range days[:n] {
				v.rep.Days.Checked++
				v.compareDaily(k.account, k.day, decodeUsage(b.Get(dailyAcctKey(k.account, k.day))), v.days[k].u)
			}
			days = days[n:]
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (v *verifier) scanAccounts(ctx context.Context, l *Ledger) error {
	return v.scanBucket(ctx, l, bucketAccounts, func(_ *bolt.Tx, k, val []byte, _ uint64) {
		var a meter.Account
		if err := json.Unmarshal(val, &a); err != nil || a.ID != string(k) {
			v.rep.add(Problem{Kind: ProblemUndecodable, Account: string(k), Message: "account record does not decode to its id"})
		}
		v.rep.Accounts++
	})
}

// scanKeys checks that every API key decodes (hash included) and belongs
// to an existing account.
func (v *verifier) scanKeys(ctx context.Context, l *Ledger) error {
	return v.scanBucket(ctx, l, bucketKeys, func(tx *bolt.Tx, k, val []byte, _ uint64) {
		v.rep.Keys++
		key, err := decodeKey(val)
		if err != nil {
			v.rep.add(Problem{Kind: ProblemUndecodable, At: string(k), Message: "api key: " + err.Error()})
			return
		}
		if tx.Bucket(bucketAccounts).Get([]byte(key.AccountID)) == nil {
			v.rep.add(Problem{Kind: ProblemMissingAccount, Account: key.AccountID, At: string(k),
				Message: "api key " + string(k) + " belongs to an account that does not exist"})
		}
	})
}
