package ledger

import (
	"encoding/binary"
	"time"

	"github.com/meterd/meterd/meter"
)

// aggCodecV1 is the usage layout and the first counter layout;
// counterCodecV2 appends the overage calls' summed price (micros) and the
// count of overage calls recorded without one.
const (
	aggCodecV1     = 1
	counterCodecV2 = 2
)

// dayNumber is days since 1970-01-01 UTC: a compact, ordered day key.
func dayNumber(t time.Time) uint32 { return uint32(t.UTC().Unix() / 86400) }

func dayTime(n uint32) time.Time { return time.Unix(int64(n)*86400, 0).UTC() }

func accountPrefix(account string) []byte {
	b := make([]byte, 0, len(account)+1+4+32)
	return append(append(b, account...), 0)
}

// An account's counters, daily totals and per-endpoint daily totals share
// one bucket, keyed account\0 kind ...: a commit that touches one account
// dirties one leaf page, not one per record kind.
const (
	kindCounter  = 'c' // account\0 c period-start(8)
	kindDaily    = 'd' // account\0 d day(4)
	kindEndpoint = 'e' // account\0 e day(4) endpoint\0 method
)

func kindPrefix(account string, kind byte) []byte {
	return append(accountPrefix(account), kind)
}

func counterKey(account string, periodStart time.Time) []byte {
	return binary.BigEndian.AppendUint64(kindPrefix(account, kindCounter), uint64(periodStart.Unix()))
}

func dailyAcctKey(account string, day uint32) []byte {
	return binary.BigEndian.AppendUint32(kindPrefix(account, kindDaily), day)
}

func dailyKey(account string, day uint32, endpoint, method string) []byte {
	b := binary.BigEndian.AppendUint32(kindPrefix(account, kindEndpoint), day)
	b = append(append(b, endpoint...), 0)
	return append(b, method...)
}

func encodeUsage(u *meter.Usage) []byte {
	b := make([]byte, 0, 1+7*8)
	b = append(b, aggCodecV1)
	for _, v := range [...]int64{u.Calls, u.Overage, u.Denied, u.Errors, u.ClientErrors, u.LatencySumMicros, u.LatencyCount} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func decodeUsage(b []byte) meter.Usage {
	var u meter.Usage
	if len(b) == 0 {
		return u
	}
	d := decoder{b: b[1:]}
	for _, p := range [...]*int64{&u.Calls, &u.Overage, &u.Denied, &u.Errors, &u.ClientErrors, &u.LatencySumMicros, &u.LatencyCount} {
		*p = int64(d.uint64())
	}
	return u
}

// counterValue is the stored form of a period counter.
func encodeCounter(c *meter.Counter) []byte {
	b := make([]byte, 0, 1+6*8)
	b = append(b, counterCodecV2)
	for _, v := range [...]int64{c.Calls, c.Overage, c.Denied, c.LastCallAt.UnixNano(), c.OverageMicros, c.UnpricedOverage} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func decodeCounter(account string, period time.Time, b []byte) meter.Counter {
	c := meter.Counter{AccountID: account, PeriodStart: period}
	if len(b) == 0 {
		return c
	}
	d := decoder{b: b[1:]}
	c.Calls, c.Overage, c.Denied = int64(d.uint64()), int64(d.uint64()), int64(d.uint64())
	if ns := int64(d.uint64()); ns != 0 {
		c.LastCallAt = time.Unix(0, ns).UTC()
	}
	if b[0] >= counterCodecV2 {
		c.OverageMicros, c.UnpricedOverage = int64(d.uint64()), int64(d.uint64())
	} else {
		c.UnpricedOverage = c.Overage
	}
	return c
}
