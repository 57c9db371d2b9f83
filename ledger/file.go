package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	bolt "go.etcd.io/bbolt"
	"io"
	"os"
)

// bbolt's on-disk meta page, as far as precheck needs it: a 16-byte page
// header, then magic, version, page size, flags, the root bucket (16
// bytes), the freelist page id, the high-water page id and the txid, all
// in the machine's byte order (little-endian on every platform we build).
const (
	boltMagic      = 0xED0CDAED
	metaOffMagic   = 16
	metaOffPgSize  = 24
	metaOffPgid    = 56
	metaOffTxid    = 64
	minMetaPageLen = 72
)

// precheck refuses, before bbolt maps it, a file that bbolt would crash on
// or silently misread: not a bbolt file, or shorter than its own meta pages
// say it is (truncated). A missing or empty file is fine: it is new.
func precheck(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return checkInterruptedRestore(path)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return nil
	}
	need, err := requiredSize(f)
	if err != nil {
		return fmt.Errorf("open %s: %w: %v", path, ErrCorrupt, err)
	}
	if fi.Size() < need {
		return fmt.Errorf("open %s: %w: file is %d bytes, its metadata needs %d (truncated?)",
			path, ErrCorrupt, fi.Size(), need)
	}
	return nil
}

// requiredSize reads both meta pages and returns the file size the newest
// valid one implies.
func requiredSize(r io.ReaderAt) (int64, error) {
	m0, err0 := readMeta(r, 0)
	if err0 != nil {
		// A torn first meta page is recoverable from the second, which
		// sits one default page further on.
		m1, err1 := readMeta(r, 4096)
		if err1 != nil {
			return 0, err0
		}
		return int64(m1.pgid) * int64(m1.pageSize), nil
	}
	best := m0
	if m1, err1 := readMeta(r, int64(m0.pageSize)); err1 == nil && m1.txid > m0.txid {
		best = m1
	}
	return int64(best.pgid) * int64(best.pageSize), nil
}

type metaInfo struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

func readMeta(r io.ReaderAt, off int64) (metaInfo, error) {
	buf := make([]byte, minMetaPageLen)
	if _, err := r.ReadAt(buf, off); err != nil {
		return metaInfo{}, fmt.Errorf("read meta page at %d: %v", off, err)
	}
	le := binary.LittleEndian
	if le.Uint32(buf[metaOffMagic:]) != boltMagic {
		return metaInfo{}, errors.New("not a bbolt file (bad magic)")
	}
	m := metaInfo{pageSize: le.Uint32(buf[metaOffPgSize:]), pgid: le.Uint64(buf[metaOffPgid:]),
		txid: le.Uint64(buf[metaOffTxid:])}
	if m.pageSize < 512 || m.pageSize > 1<<20 {
		return metaInfo{}, fmt.Errorf("implausible page size %d", m.pageSize)
	}
	return m, nil
}

// boltOptions is how the ledger opens bbolt (figures in BENCHMARKS.md):
// the free-page list is not written with every commit (NoFreelistSync) —
// it was a page or more of every small commit, ~100 pages on a large
// file — and bbolt rebuilds it by walking the file's pages at open
// instead; the hashmap freelist keeps allocation cheap however many free
// pages that walk finds.
func boltOptions(opts Options) *bolt.Options {
	o := &bolt.Options{
		Timeout:         opts.LockTimeout,
		InitialMmapSize: opts.InitialMmapSize,
		FreelistType:    bolt.FreelistMapType,
		NoFreelistSync:  !opts.freelistSync,
	}
	if opts.freelistArray {
		o.FreelistType = bolt.FreelistArrayType
	}
	return o
}
