package ledger

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/meterd/meterd/meter"
)

// Binary layouts. Hand-written rather than JSON because the writer encodes
// one event per metered call: this keeps a group commit of thousands of
// events cheap. Every record starts with a version byte.

// Event layouts: V2 appends the overage call's price (uvarint micros) to
// V1, which had none; a V1 overage event decodes with OverageMicros -1
// (unpriced, see meter.Counter.Count). V3 appends the number of denied
// calls a coalesced denial stands for (uvarint, 0 for a record of one
// call); V1 and V2 records decode as one call each.
const (
	eventCodecV1 = 1
	eventCodecV2 = 2
	eventCodecV3 = 3
)

var errShortRecord = errors.New("ledger: short record")

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

func getUint64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeEvent lays out an event; the seq is the key, not part of the value.
func encodeEvent(b []byte, ev *meter.Event) []byte {
	b = append(b, eventCodecV3, byte(ev.Decision), boolByte(ev.Overage))
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(ev.PeriodStart.Unix()))
	b = binary.AppendUvarint(b, uint64(ev.Status))
	b = binary.AppendUvarint(b, uint64(max(ev.LatencyMicros, 0)))
	for _, s := range [...]string{ev.Node, ev.AccountID, ev.KeyID, ev.Endpoint, ev.Method, ev.IdempotencyKey} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(max(ev.OverageMicros, 0)))
	return binary.AppendUvarint(b, uint64(max(ev.Coalesced, 0)))
}

// decodeEvent copies everything out of b, which may be bbolt memory.
func decodeEvent(seq uint64, b []byte) (meter.Event, error) {
	d := decoder{b: b}
	version := d.byte()
	if version < eventCodecV1 || version > eventCodecV3 {
		return meter.Event{}, errors.New("ledger: unknown event version")
	}
	ev := meter.Event{Seq: seq, Decision: meter.Decision(d.byte()), Overage: d.byte() == 1}
	ev.Time = time.Unix(0, int64(d.uint64())).UTC()
	ev.PeriodStart = time.Unix(int64(d.uint64()), 0).UTC()
	ev.Status = int(d.uvarint())
	ev.LatencyMicros = int64(d.uvarint())
	for _, p := range [...]*string{&ev.Node, &ev.AccountID, &ev.KeyID, &ev.Endpoint, &ev.Method, &ev.IdempotencyKey} {
		*p = d.string()
	}
	if version >= eventCodecV2 {
		ev.OverageMicros = int64(d.uvarint())
	} else if ev.Overage {
		ev.OverageMicros = -1 // priced before calls carried a price
	}
	if version >= eventCodecV3 {
		ev.Coalesced = int64(d.uvarint())
	}
	return ev, d.err
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// decoder reads a record front to back, remembering the first error so
// callers check once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err, d.b = errShortRecord, nil }

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if uint64(len(d.b)) < n {
		d.fail()
		return ""
	}
	s := string(d.b[:n]) // string() copies out of bbolt memory
	d.b = d.b[n:]
	return s
}
