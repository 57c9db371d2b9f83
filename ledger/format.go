package ledger

import (
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Layout versions, stored as meta "format" (decimal):
//
//	1  every group commit rewrote counters and daily aggregates with its
//	   events (meterd up to db94890).
//	2  commits write events and idempotency records only; counters and
//	   aggregates are written by checkpoints that record checkpoint_seq.
//
// A format 1 file upgrades in place on open: its aggregates cover every
// event, so checkpoint_seq = last_seq. A file of a newer format than
// formatCurrent is refused (ErrFormatTooNew) and left untouched.
const (
	formatV1      = 1
	formatCurrent = 2
)

var metaFormat = []byte("format")

// fileFormat reads the stored layout version.
func fileFormat(meta *bolt.Bucket) (int, error) {
	raw := string(meta.Get(metaFormat))
	f, err := strconv.Atoi(raw)
	if err != nil || f < formatV1 {
		return 0, fmt.Errorf("%w: unreadable format %q", ErrCorrupt, raw)
	}
	return f, nil
}

// checkFormat accepts the layouts this binary reads or upgrades.
func checkFormat(meta *bolt.Bucket) error {
	f, err := fileFormat(meta)
	if err != nil {
		return err
	}
	if f > formatCurrent {
		return fmt.Errorf("%w: the file has format %d, this meterd understands up to %d; run the meterd that wrote it (or a newer one), or restore a backup taken before the upgrade",
			ErrFormatTooNew, f, formatCurrent)
	}
	return nil
}

// upgradeFormat brings an older layout to formatCurrent inside the open
// transaction, so an upgrade is all or nothing.
func upgradeFormat(meta *bolt.Bucket) error {
	f, err := fileFormat(meta)
	if err != nil || f == formatCurrent {
		return err
	}
	if f == formatV1 {
		if err := meta.Put(metaCheckpointSeq, seqKey(getUint64(meta.Get(metaLastSeq)))); err != nil {
			return err
		}
	}
	return meta.Put(metaFormat, []byte(strconv.Itoa(formatCurrent)))
}
