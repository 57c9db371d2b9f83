package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Compile-time checks that the ledger implements the domain interfaces.
var (
	_ meter.Store    = (*Ledger)(nil)
	_ meter.EventLog = (*Ledger)(nil)
)

// magic marks a bbolt file as a meterd ledger; its layout version is
// meta "format" (format.go).
const magic = "meterd-ledger"

// Bucket names. Keys are big-endian wherever order matters, so a cursor
// walks them in time order.
var (
	bucketMeta       = []byte("meta")
	bucketEvents     = []byte("events")      // seq -> event
	bucketUsage      = []byte("usage")       // account\0kind... -> counter or aggregate (aggregate.go)
	bucketDailyTotal = []byte("daily_total") // day -> aggregate
	bucketIdem       = []byte("idem")        // account\0id -> first answer
	bucketAccounts   = []byte("accounts")    // id -> account JSON
	bucketKeys       = []byte("keys")        // id -> key JSON
	bucketCursors    = []byte("cursors")     // name -> seq
	bucketPlanDaily  = []byte("plan_daily")  // plan\0 day -> aggregate (plantotal.go)
	allBuckets       = [][]byte{bucketMeta, bucketEvents, bucketUsage, bucketDailyTotal, bucketIdem, bucketAccounts, bucketKeys, bucketCursors, bucketPlanDaily}
)

// Options configure a Ledger. Zero values take the documented defaults.
type Options struct {
	// NodeID is stamped on every event; empty keeps the id stored in the
	// file, or generates one on first open.
	NodeID string
	// MaxBatch bounds the writes in one group commit (default 4096).
	MaxBatch int
	// QueueSize bounds writes waiting for the writer (default 65536); past
	// it, Append fails fast with meter.ErrOverloaded instead of growing
	// memory without bound.
	QueueSize int
	// LockTimeout is how long Open waits for another process's lock
	// (default 1s) before failing with ErrInUse.
	LockTimeout time.Duration
	// InitialMmapSize in bytes (default 1 GiB of address space, not disk):
	// while the file fits, readers never block the writer's remap.
	InitialMmapSize int
	// AsyncDelay is how long the writer may hold open a group in which no
	// caller waits (async appends only) to let it grow (default 2ms; <0
	// off). It bounds the extra time an async call spends unwritten, on
	// top of the commit itself; a waiting caller closes the group at once.
	AsyncDelay time.Duration
	// Observer, if set, is told about every group commit (metrics).
	Observer CommitObserver
	// MinFreeBytes is the disk-space floor (default 0: off): while the
	// ledger's file system has less free space, writes fail with
	// ErrDiskFull and reads go on (diskspace.go).
	MinFreeBytes uint64
	// FreeSpace reports the bytes free for the directory at path (default:
	// statfs). Tests fake it.
	FreeSpace func(path string) (uint64, error)
	// BeforeCommit is the fault-injection seam: if set, the writer calls
	// it inside every write transaction just before commit, and a non-nil
	// error fails that commit exactly as a storage error would (wrap
	// syscall.ENOSPC or syscall.EIO to pick the class). Tests only.
	BeforeCommit func() error
	// BeforeCheckpoint is the same seam for checkpoint transactions.
	BeforeCheckpoint func() error
	// RetryMax caps the backoff between retries of a failed group that
	// holds answered (async) writes (default 2s; the first retry waits
	// 10ms and each next one twice as long).
	RetryMax time.Duration
	// Logger receives the writer's failure and recovery lines (default
	// slog.Default()).
	Logger *slog.Logger
	// CheckpointEvents and CheckpointInterval say when the writer folds
	// the in-memory counters and aggregates into the file (checkpoint.go):
	// after this many events (default 100,000) or this long with any
	// (default 30s), whichever comes first. They bound the events Open
	// replays after a crash.
	CheckpointEvents   int
	CheckpointInterval time.Duration

	// freelistSync writes bbolt's free-page list with every commit (off by
	// default; benchmarks compare). freelistArray picks bbolt's array
	// freelist instead of the hashmap one.
	freelistSync, freelistArray bool
	// noCoalesce stores every denial as its own record (coalesce.go), for
	// benchmarks that measure what coalescing saves.
	noCoalesce bool
}

// CommitObserver receives one call per group commit, from the writer
// goroutine: keep it cheap.
type CommitObserver interface {
	ObserveCommit(ops int, took time.Duration, err error)
}

// RetryObserver is optionally implemented by a CommitObserver: it is told
// each time the writer retries a failed group that holds answered writes
// (pending of them), and with pending 0 once the group is committed.
type RetryObserver interface {
	ObserveCommitRetry(pending int, err error)
}

func (o *Options) setDefaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 65536
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.AsyncDelay == 0 {
		o.AsyncDelay = 2 * time.Millisecond
	}
	if o.InitialMmapSize <= 0 {
		o.InitialMmapSize = 1 << 30
	}
	if o.CheckpointEvents <= 0 {
		o.CheckpointEvents = 100_000
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 30 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Ledger is the bbolt-backed store. Create it with Open; Close it once.
type Ledger struct {
	db   *bolt.DB
	path string
	node string
	opts Options

	queue chan *op
	cpReq chan chan error // Checkpoint's requests to the writer
	quit  chan struct{}
	done  chan struct{}

	// mu guards closed; Append holds it shared while it enqueues so that
	// Close, holding it exclusively, knows no sender is left.
	mu     sync.RWMutex
	closed bool

	// lastSeq is owned by the writer goroutine; published for readers.
	lastSeq atomic.Uint64

	// beforeCommit is the fault-injection seam (Options.BeforeCommit),
	// swappable while the writer runs.
	beforeCommit atomic.Pointer[func() error]

	// beforeCheckpoint is the same seam for checkpoint transactions.
	beforeCheckpoint atomic.Pointer[func() error]

	// aggMu guards the in-memory aggregates (overlay.go): live holds the
	// events committed since the last checkpoint began, folding the ones a
	// checkpoint is writing (nil between checkpoints). The writer takes
	// it exclusively after each commit; readers hold it shared across
	// their read transaction, so stored rows and deltas match.
	aggMu   sync.RWMutex
	live    *aggs
	folding *aggs
	// lastCheckpoint is owned by the writer goroutine.
	lastCheckpoint time.Time

	// stall, while set, is the error new writes get: the writer is
	// retrying a failed group of answered writes (retry.go).
	stall atomic.Pointer[error]

	// disk caches the free-space probe of the disk floor (diskspace.go).
	disk diskProbe
}

// Open opens or creates the ledger file at path. A file held by another
// process fails with ErrInUse within opts.LockTimeout; a damaged or foreign
// file fails with ErrCorrupt and is not modified.
func Open(path string, opts Options) (*Ledger, error) {
	opts.setDefaults()
	if err := precheck(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, boltOptions(opts))
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %v", path, ErrCorrupt, err)
	}
	l := &Ledger{db: db, path: path, opts: opts,
		queue: make(chan *op, opts.QueueSize), cpReq: make(chan chan error), quit: make(chan struct{}), done: make(chan struct{})}
	if opts.BeforeCommit != nil {
		l.beforeCommit.Store(&opts.BeforeCommit)
	}
	if opts.BeforeCheckpoint != nil {
		l.beforeCheckpoint.Store(&opts.BeforeCheckpoint)
	}
	if err := l.init(opts.NodeID); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := l.replay(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w: %v", path, ErrCorrupt, err)
	}
	l.lastCheckpoint = time.Now()
	go l.run()
	return l, nil
}

// init checks the file is ours (or empty), creates missing buckets and
// loads the node id and last sequence.
func (l *Ledger) init(nodeID string) error {
	if err := l.db.View(checkOwnership); err != nil {
		return err
	}
	return l.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get([]byte("magic")) == nil {
			if err := meta.Put([]byte("magic"), []byte(magic)); err != nil {
				return err
			}
			if err := meta.Put(metaFormat, []byte(strconv.Itoa(formatCurrent))); err != nil {
				return err
			}
			if err := meta.Put(metaCheckpointSeq, seqKey(0)); err != nil {
				return err
			}
		}
		if err := upgradeFormat(meta); err != nil {
			return err
		}
		node, err := resolveNode(meta, nodeID)
		if err != nil {
			return err
		}
		l.node = epochNode(meta, node)
		return nil
	})
}

// checkOwnership refuses a bbolt file that holds data but is not a meterd
// ledger of a format we understand.
func checkOwnership(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if empty {
			return nil
		}
		return fmt.Errorf("%w: no meterd metadata (a foreign bbolt file?)", ErrCorrupt)
	}
	if string(meta.Get([]byte("magic"))) != magic {
		return fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	return checkFormat(meta)
}

// resolveNode picks the node id: the flag if given (and remembers it),
// else the stored one, else a fresh random one.
func resolveNode(meta *bolt.Bucket, want string) (string, error) {
	stored := string(meta.Get([]byte("node_id")))
	if want == "" && stored != "" {
		return stored, nil
	}
	if want == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		want = "n" + hex.EncodeToString(b[:])
	}
	if want != stored {
		if err := meta.Put([]byte("node_id"), []byte(want)); err != nil {
			return "", err
		}
	}
	return want, nil
}

// NodeID is the node id stamped on events: for a restored ledger, the
// stored or configured id with its epoch suffix (epoch.go).
func (l *Ledger) NodeID() string { return l.node }

// Path is the ledger file's path.
func (l *Ledger) Path() string { return l.path }

// Close stops accepting writes, commits everything already queued, and
// closes the file. It is safe to call more than once.
func (l *Ledger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.quit)
	<-l.done
	return l.db.Close()
}

// view runs a read-only transaction, honouring ctx before it starts.
func (l *Ledger) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.db.View(fn)
}

// FileSize reports the ledger file's size in bytes.
func (l *Ledger) FileSize() int64 {
	fi, err := os.Stat(l.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
