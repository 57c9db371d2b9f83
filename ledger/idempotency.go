package ledger

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

func idemKey(account, id string) []byte {
	return append(accountPrefix(account), id...)
}

// putIdempotency remembers the first answer for a call id, in the same
// transaction as its event.
func putIdempotency(b *bolt.Bucket, ev *meter.Event) error {
	if ev.IdempotencyKey == "" {
		return nil
	}
	v := make([]byte, 0, 18+len(ev.Node))
	v = binary.BigEndian.AppendUint64(v, ev.Seq)
	v = binary.BigEndian.AppendUint64(v, uint64(ev.Time.UnixNano()))
	v = append(v, byte(ev.Decision), boolByte(ev.Overage))
	v = append(v, ev.Node...)
	return b.Put(idemKey(ev.AccountID, ev.IdempotencyKey), v)
}

// Idempotency implements meter.Store.
func (l *Ledger) Idempotency(ctx context.Context, account, id string) (meter.IdempotencyRecord, bool, error) {
	var rec meter.IdempotencyRecord
	var found bool
	err := l.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketIdem).Get(idemKey(account, id))
		if len(v) < 18 {
			return nil
		}
		found = true
		rec.Seq = binary.BigEndian.Uint64(v)
		rec.Time = time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC()
		rec.Decision, rec.Overage = meter.Decision(v[16]), v[17] == 1
		rec.Node = string(v[18:])
		return nil
	})
	return rec, found, err
}
