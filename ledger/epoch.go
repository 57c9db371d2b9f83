package ledger

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A ledger's epoch counts the backups installed to make it: 0 for a
// ledger that was never restored, one more on each Restore. A restored
// ledger goes on from the backup's last sequence, so the sequences it
// hands out after the restore were already handed out by the original
// ledger after the backup was taken. The epoch is what tells the two
// apart: events of a restored ledger carry the node id
// "<node>.e<epoch>.<restore tag>" (metaNodeSuffix), so their ids never
// equal an id the original handed out, and billing folds the epoch into
// what it numbers.
//
// Meta keys, all written by Restore into the staged copy before it is
// installed, so the installed file carries them from its first open.
var (
	metaEpoch      = []byte("epoch")       // big-endian uint64
	metaRestoredAt = []byte("restored_at") // big-endian uint64, Unix nanoseconds UTC
	metaNodeSuffix = []byte("node_suffix") // "e<epoch>.<4 hex>", appended to the node id
)

// Epoch is the number of backups installed to make this ledger: 0 if it
// was never restored.
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

// RestoredAt is when the last backup was installed to make this ledger
// (UTC), or the zero time if it was never restored.
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

// epochNode is the node id stamped on events: the configured or stored
// node id, plus the restore suffix of a restored ledger. The suffix is
// applied after --node-id, so a fixed node id cannot undo it.
func epochNode(meta *bolt.Bucket, node string) string {
	if s := meta.Get(metaNodeSuffix); len(s) > 0 {
		return node + "." + string(s)
	}
	return node
}

// FileEpoch returns the epoch stored in the ledger file at path, opened
// read-only (so it fails with ErrInUse while meterd runs on it).
func FileEpoch(path string) (uint64, error) {
	db, err := openReadOnly(path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var e uint64
	err = db.View(func(tx *bolt.Tx) error {
		e = getUint64(tx.Bucket(bucketMeta).Get(metaEpoch))
		return nil
	})
	return e, err
}

// stampRestore marks the staged copy at path as restored: its epoch
// becomes one more than both its own and floor (the epoch of the ledger
// it replaces), with the time and a fresh node suffix. It returns the new
// epoch. The copy is not yet installed, so nothing else has it open.
func stampRestore(path string, floor uint64, now time.Time) (uint64, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, fmt.Errorf("stamp restore: %w", err)
	}
	var tag [2]byte
	if _, err := rand.Read(tag[:]); err != nil {
		db.Close()
		return 0, err
	}
	var epoch uint64
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%w: no meta bucket", ErrCorrupt)
		}
		epoch = max(getUint64(meta.Get(metaEpoch)), floor) + 1
		suffix := "e" + strconv.FormatUint(epoch, 10) + "." + hex.EncodeToString(tag[:])
		if err := meta.Put(metaEpoch, seqKey(epoch)); err != nil {
			return err
		}
		if err := meta.Put(metaRestoredAt, seqKey(uint64(now.UnixNano()))); err != nil {
			return err
		}
		return meta.Put(metaNodeSuffix, []byte(suffix))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("stamp restore: %w", err)
	}
	return epoch, nil
}
