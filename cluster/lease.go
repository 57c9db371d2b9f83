package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Leases hands out a node's leased allowance one admission at a time and
// leases more from Postgres when it runs out. It implements meter.Allowance.
type Leases struct {
	c *Cluster

	pools sync.Map // poolKey -> *pool

	// settleMu serialises the one-time settlement of the leases this node
	// held when it last stopped; settled is set once it has succeeded.
	settleMu sync.Mutex
	settled  atomic.Bool

	// bgMu guards closed and the prefetches' WaitGroup: no prefetch
	// starts once stop has begun waiting.
	bgMu   sync.Mutex
	closed bool
	bg     sync.WaitGroup

	roundTrips atomic.Int64
	grants     prometheus.Counter
	trips      prometheus.Counter
	unleased   prometheus.Counter
}

type poolKey struct {
	account string
	period  int64 // unix seconds of the period start
}

// pool is the allowance held for one account's period. Its mutex is held
// across a refill, so concurrent calls of one account wait for one round
// trip instead of each making their own.
type pool struct {
	mu    sync.Mutex
	start time.Time
	held  int64
	// granted is the cluster's total grant as last seen, for the chunk rule.
	granted int64
	// chunk is the size of the last lease; prefetching is set while a
	// background lease for this pool is in flight.
	chunk       int64
	prefetching bool
	// exhaustedUntil: the whole limit was granted when last asked; deny
	// without asking until then.
	exhaustedUntil time.Time
}

func newLeases(c *Cluster, f promauto.Factory) *Leases {
	return &Leases{c: c,
		grants: f.NewCounter(prometheus.CounterOpts{Name: "lease_grants_total",
			Help: "Allowance leased from Postgres, in calls."}),
		trips: f.NewCounter(prometheus.CounterOpts{Name: "lease_round_trips_total",
			Help: "Postgres round trips made by the lease store."}),
		unleased: f.NewCounter(prometheus.CounterOpts{Name: "lease_unleased_admissions_total",
			Help: "Hard-limited calls admitted without a lease under --cluster-fail=open."}),
	}
}

// RoundTrips is the number of Postgres round trips the leases have made.
func (l *Leases) RoundTrips() int64 { return l.roundTrips.Load() }

func (l *Leases) pool(account string, start time.Time) *pool {
	k := poolKey{account, start.Unix()}
	if p, ok := l.pools.Load(k); ok {
		return p.(*pool)
	}
	p, _ := l.pools.LoadOrStore(k, &pool{start: start})
	return p.(*pool)
}

// Take admits one call from held allowance, leasing a chunk first when
// none is held. See meter.Allowance.
func (l *Leases) Take(ctx context.Context, account string, period meter.Period, limit int64) (bool, error) {
	p := l.pool(account, period.Start)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held > 0 {
		p.held--
		l.maybePrefetchLocked(p, account, period, limit)
		return true, nil
	}
	now := time.Now()
	if now.Before(p.exhaustedUntil) {
		return false, nil
	}
	chunk := meter.LeaseChunk(limit, p.granted, int(l.c.liveNodes.Load()))
	if chunk == 0 {
		chunk = 1 // as last seen all was granted; ask anyway, some may have come back
	}
	got, total, err := l.grant(ctx, account, period.Start, chunk, limit)
	if err != nil {
		return l.unavailable(err)
	}
	p.granted = total
	if got == 0 {
		p.exhaustedUntil = now.Add(exhaustedRecheck)
		return false, nil
	}
	p.held, p.chunk = got-1, got
	return true, nil
}

// prefetchMin is the smallest chunk worth prefetching after: below it the
// pool is in the tail, where a node must not hold more than it needs.
const prefetchMin = 16

// maybePrefetchLocked leases the next chunk in the background once the
// pool is down to a quarter of its last chunk, so the call that would
// empty it does not wait for Postgres. At most one prefetch per pool is
// in flight; a pool that empties before it lands refills synchronously.
func (l *Leases) maybePrefetchLocked(p *pool, account string, period meter.Period, limit int64) {
	if p.prefetching || p.chunk < prefetchMin || p.held > p.chunk/4 || time.Now().Before(p.exhaustedUntil) {
		return
	}
	l.bgMu.Lock()
	defer l.bgMu.Unlock()
	if l.closed {
		return
	}
	p.prefetching = true
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		l.prefetch(p, account, period, limit)
	}()
}

// prefetch is the background lease of maybePrefetchLocked. It is not
// cancelled at shutdown (opTimeout bounds it): a lease cancelled after
// its commit would stay counted until the next start's settlement.
func (l *Leases) prefetch(p *pool, account string, period meter.Period, limit int64) {
	p.mu.Lock()
	chunk := meter.LeaseChunk(limit, p.granted, int(l.c.liveNodes.Load()))
	p.mu.Unlock()
	var got, total int64
	var err error
	if chunk > 0 {
		got, total, err = l.grant(context.Background(), account, period.Start, chunk, limit)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prefetching = false
	if err != nil || chunk == 0 {
		return // the synchronous path tries again, and answers for a failure
	}
	p.granted = total
	if got == 0 {
		p.exhaustedUntil = time.Now().Add(exhaustedRecheck)
		return
	}
	p.held, p.chunk = p.held+got, got
}

// stop waits for prefetches in flight and starts no more.
func (l *Leases) stop() {
	l.bgMu.Lock()
	l.closed = true
	l.bgMu.Unlock()
	l.bg.Wait()
}

// Give puts back admissions that were taken but not spent.
func (l *Leases) Give(account string, period meter.Period, n int64) {
	p := l.pool(account, period.Start)
	p.mu.Lock()
	p.held += n
	p.mu.Unlock()
}

// unavailable answers a call when no allowance could be leased.
func (l *Leases) unavailable(err error) (bool, error) {
	l.c.noteResult(err)
	if l.c.cfg.Fail == FailOpen {
		l.unleased.Inc()
		return true, nil
	}
	return false, fmt.Errorf("%w: %v", meter.ErrQuotaUnavailable, err)
}

// grantSQL leases up to $3 calls of account $1's period $2 under limit $4
// for node $5, in one statement: the upsert adds at most limit - granted
// (its WHERE refuses when nothing remains, so no row comes back), and the
// node's lease row grows by the same amount in the same transaction.
const grantSQL = `
WITH g AS (
    INSERT INTO meterd_quota_grants AS q (account_id, period_start, granted, last_grant, updated_at)
    VALUES ($1, $2, LEAST($3::bigint, $4::bigint), LEAST($3::bigint, $4::bigint), now())
    ON CONFLICT (account_id, period_start) DO UPDATE
        SET granted = q.granted + LEAST($3::bigint, $4::bigint - q.granted),
            last_grant = LEAST($3::bigint, $4::bigint - q.granted),
            updated_at = now()
        WHERE q.granted < $4::bigint
    RETURNING granted, last_grant
), l AS (
    INSERT INTO meterd_quota_leases AS ls (node_id, account_id, period_start, granted, expires_at)
    SELECT $5, $1, $2, g.last_grant, now() + $6::bigint * interval '1 second' FROM g
    ON CONFLICT (node_id, account_id, period_start) DO UPDATE
        SET granted = ls.granted + EXCLUDED.granted, expires_at = EXCLUDED.expires_at
    RETURNING ls.granted
)
SELECT g.granted, g.last_grant FROM g`

// grant leases a chunk; got is 0 when the whole limit is already granted.
func (l *Leases) grant(ctx context.Context, account string, start time.Time, chunk, limit int64) (got, total int64, err error) {
	if err := l.ensureSettled(ctx); err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	l.roundTrips.Add(1)
	l.trips.Inc()
	err = l.c.db.QueryRow(ctx, grantSQL, account, start, chunk, limit, l.c.node,
		int64(l.leaseTTL()/time.Second)).Scan(&total, &got)
	if errors.Is(err, pgx.ErrNoRows) {
		l.c.noteResult(nil)
		return 0, limit, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("lease %s: %w", account, err)
	}
	l.c.noteResult(nil)
	l.grants.Add(float64(got))
	return got, total, nil
}

// leaseTTL is how long a lease row stays fresh without a heartbeat.
func (l *Leases) leaseTTL() time.Duration { return max(DeadAfter, 3*l.c.cfg.Heartbeat) }

// returnSQL gives n calls of node $1's lease back to the pool of account
// $2's period $3, only if the lease still holds them.
const returnSQL = `
WITH ls AS (
    UPDATE meterd_quota_leases SET granted = granted - $4
    WHERE node_id = $1 AND account_id = $2 AND period_start = $3 AND granted >= $4
    RETURNING 1
)
UPDATE meterd_quota_grants SET granted = granted - $4, updated_at = now()
WHERE account_id = $2 AND period_start = $3 AND EXISTS (SELECT 1 FROM ls)`

// returnAll hands every unspent admission back, at shutdown, after the
// meter has stopped deciding.
func (l *Leases) returnAll(ctx context.Context) error {
	var errs []error
	l.pools.Range(func(k, v any) bool {
		key, p := k.(poolKey), v.(*pool)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.held <= 0 {
			return true
		}
		l.roundTrips.Add(1)
		if _, err := l.c.db.Exec(ctx, returnSQL, l.c.node, key.account, p.start, p.held); err != nil {
			errs = append(errs, fmt.Errorf("return allowance of %s: %w", key.account, err))
			return true
		}
		p.held = 0
		return true
	})
	return errors.Join(errs...)
}

// held sums the allowance this node holds unspent.
func (l *Leases) held() int64 {
	var n int64
	l.pools.Range(func(_, v any) bool {
		p := v.(*pool)
		p.mu.Lock()
		n += p.held
		p.mu.Unlock()
		return true
	})
	return n
}

// settleSQL shrinks node $1's lease of account $2's period $3 from what it
// was ($4) to what the node's ledger shows it spent ($5), and gives the
// difference back; a lease that changed meanwhile is left alone.
const settleSQL = `
WITH ls AS (
    UPDATE meterd_quota_leases SET granted = $5
    WHERE node_id = $1 AND account_id = $2 AND period_start = $3 AND granted = $4
    RETURNING 1
)
UPDATE meterd_quota_grants SET granted = granted - ($4::bigint - $5::bigint), updated_at = now()
WHERE account_id = $2 AND period_start = $3 AND EXISTS (SELECT 1 FROM ls)`

// ensureSettled settles, once and before this process's first grant, the
// leases the node held when it last stopped: if it was killed, its lease
// rows still count the allowance it held unspent. Its own ledger knows
// exactly what it spent, so the rest goes back. Until this has succeeded
// the node leases nothing.
func (l *Leases) ensureSettled(ctx context.Context) error {
	if l.settled.Load() {
		return nil
	}
	l.settleMu.Lock()
	defer l.settleMu.Unlock()
	if l.settled.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 4*opTimeout)
	defer cancel()
	type lease struct {
		account string
		start   time.Time
		granted int64
	}
	var leases []lease
	l.roundTrips.Add(1)
	rows, err := l.c.db.Query(ctx, `SELECT account_id, period_start, granted FROM meterd_quota_leases WHERE node_id = $1`, l.c.node)
	if err != nil {
		return fmt.Errorf("settle leases: %w", err)
	}
	for rows.Next() {
		var ls lease
		if err := rows.Scan(&ls.account, &ls.start, &ls.granted); err != nil {
			rows.Close()
			return fmt.Errorf("settle leases: %w", err)
		}
		leases = append(leases, ls)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("settle leases: %w", err)
	}
	var returned int64
	for _, ls := range leases {
		spent, err := l.c.cfg.Local.LocalCalls(ctx, ls.account, ls.start)
		if err != nil {
			return fmt.Errorf("settle leases: %w", err)
		}
		spent = min(spent, ls.granted) // calls admitted before cluster mode are not the lease's
		if spent == ls.granted {
			continue
		}
		l.roundTrips.Add(1)
		if _, err := l.c.db.Exec(ctx, settleSQL, l.c.node, ls.account, ls.start, ls.granted, spent); err != nil {
			return fmt.Errorf("settle lease of %s: %w", ls.account, err)
		}
		returned += ls.granted - spent
	}
	if returned > 0 {
		l.c.log.Info("cluster: settled the leases held at the last stop against the ledger", "returned_calls", returned)
	}
	l.settled.Store(true)
	return nil
}
