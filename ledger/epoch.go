package ledger

import (
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Meta keys of the restore epoch: how many backups were installed over
// this ledger's history (big-endian uint64; absent means 0) and when the
// last one was (big-endian unix nanoseconds).
var (
	metaEpoch      = []byte("epoch")
	metaRestoredAt = []byte("restored_at")
)

// Epoch is the ledger's restore epoch: 0 if it was never restored, one
// more for every backup installed by Restore. Billing reconciles with
// Stripe before charging a period it last checked in an older epoch: a
// restored ledger may have forgotten charges that Stripe holds.
func (l *Ledger) Epoch() uint64 {
	var e uint64
	_ = l.db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			e = getUint64(meta.Get(metaEpoch))
		}
		return nil
	})
	return e
}

// RestoredAt is when the backup now in use was installed (zero if the
// ledger was never restored).
func (l *Ledger) RestoredAt() time.Time {
	var ns uint64
	_ = l.db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			ns = getUint64(meta.Get(metaRestoredAt))
		}
		return nil
	})
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns)).UTC()
}

// bumpEpoch marks the staged copy of a backup as restored, before it is
// installed: its epoch becomes one more than the backup's.
func bumpEpoch(path string, at time.Time) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		e := getUint64(meta.Get(metaEpoch)) + 1
		if err := meta.Put(metaEpoch, binary.BigEndian.AppendUint64(nil, e)); err != nil {
			return err
		}
		return meta.Put(metaRestoredAt, binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}
