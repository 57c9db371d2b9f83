package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file lets the external tests damage a ledger on purpose, to prove
// that Verify notices. Tests only.

// SetVerifyChunk makes Verify read n records per transaction and returns
// a function restoring the default. Tests that call it must not run in
// parallel.
func SetVerifyChunk(n int) (restore func()) {
	old := verifyChunk
	verifyChunk = n
	return func() { verifyChunk = old }
}

// OverwriteCounter sets the stored calls of one period counter, leaving
// its events alone.
func (l *Ledger) OverwriteCounter(ctx context.Context, account string, periodStart time.Time, calls int64) error {
	return l.update(ctx, func(tx *bolt.Tx) error {
		b, key := tx.Bucket(bucketUsage), counterKey(account, periodStart)
		c := decodeCounter(account, periodStart, b.Get(key))
		c.Calls = calls
		return b.Put(key, encodeCounter(&c))
	})
}

// OverwriteDailyTotal sets the calls of one day's all-accounts total.
func (l *Ledger) OverwriteDailyTotal(ctx context.Context, day time.Time, calls int64) error {
	return l.update(ctx, func(tx *bolt.Tx) error {
		b, key := tx.Bucket(bucketDailyTotal), binary.BigEndian.AppendUint32(nil, dayNumber(day))
		u := decodeUsage(b.Get(key))
		u.Calls = calls
		return b.Put(key, encodeUsage(&u))
	})
}

// DeleteEvent removes one event and nothing else.
func (l *Ledger) DeleteEvent(ctx context.Context, seq uint64) error {
	return l.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Delete(seqKey(seq)) })
}

// SetMetaLastSeq overwrites last_seq in the meta bucket of the closed
// ledger file at path (through the writer it would be rewritten by the
// same commit).
func SetMetaLastSeq(path string, seq uint64) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("last_seq"), seqKey(seq)) })
	return errors.Join(err, db.Close())
}

// SetMetaFormat stores a raw layout version in a closed ledger file.
func SetMetaFormat(path, format string) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaFormat, []byte(format)) })
	return errors.Join(err, db.Close())
}

// MetaFormat reads the stored layout version of a closed ledger file.
func MetaFormat(path string) (string, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return "", err
	}
	var f string
	err = db.View(func(tx *bolt.Tx) error { f = string(tx.Bucket(bucketMeta).Get(metaFormat)); return nil })
	return f, errors.Join(err, db.Close())
}
