package ledger

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/meterd/meterd/meter"
)

// Records written before calls carried their price still decode: their
// overage is unpriced, to be priced at the account's plan.
func TestCodec_FirstLayouts(t *testing.T) {
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	v1 := []byte{aggCodecV1}
	for _, v := range []int64{105000, 5000, 7, nov.Add(time.Hour).UnixNano()} {
		v1 = binary.BigEndian.AppendUint64(v1, uint64(v))
	}
	c := decodeCounter("a", nov, v1)
	if c.Calls != 105000 || c.Overage != 5000 || c.UnpricedOverage != 5000 || c.OverageMicros != 0 || c.Denied != 7 {
		t.Fatalf("first-layout counter = %+v", c)
	}
	if got := decodeCounter("a", nov, encodeCounter(&c)); got != c {
		t.Fatalf("round trip = %+v, want %+v", got, c)
	}

	ev := meter.Event{Time: nov.Add(time.Hour), PeriodStart: nov, AccountID: "a", Endpoint: "/x", Method: "GET",
		Decision: meter.Allowed, Overage: true, OverageMicros: 1000}
	b := encodeEvent(nil, &ev)
	if got, err := decodeEvent(1, b); err != nil || got.OverageMicros != 1000 {
		t.Fatalf("event = %+v %v", got, err)
	}
	// b ends with the price (two bytes) and V3's coalesced count (one).
	v2 := append([]byte{eventCodecV2}, b[1:len(b)-1]...)
	if got, err := decodeEvent(1, v2); err != nil || got.OverageMicros != 1000 || got.Coalesced != 0 || got.Calls() != 1 {
		t.Fatalf("second-layout event = %+v %v", got, err)
	}
	old := append([]byte{eventCodecV1}, b[1:len(b)-1-binary.PutUvarint(make([]byte, 10), 1000)]...)
	got, err := decodeEvent(1, old)
	if err != nil || !got.Overage || got.OverageMicros != -1 || got.AccountID != "a" {
		t.Fatalf("first-layout event = %+v %v", got, err)
	}
	var sum meter.Counter
	sum.Count(&got)
	denied := meter.Event{Time: nov, PeriodStart: nov, AccountID: "a", Decision: meter.Denied, Coalesced: 300}
	if got, err := decodeEvent(2, encodeEvent(nil, &denied)); err != nil || got.Coalesced != 300 {
		t.Fatalf("coalesced denial = %+v %v", got, err)
	} else {
		sum.Count(&got)
	}
	if sum.Denied != 300 {
		t.Fatalf("a coalesced denial of 300 counted as %d", sum.Denied)
	}
	if sum.UnpricedOverage != 1 || sum.OverageMicros != 0 {
		t.Fatalf("counted as %+v", sum)
	}
}
