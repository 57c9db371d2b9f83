package meter

import (
	"context"
	"sync"
)

// inflightTable makes calls with the same idempotency id meet: the first
// decides, the others wait for its answer. Once the first has committed,
// the ledger's idempotency record answers later retries.
type inflightTable struct {
	mu sync.Mutex
	m  map[string]*inflightCall
}

type inflightCall struct {
	done chan struct{}
	res  Result
	err  error
}

// join returns the call in flight for key, or registers a new one (first
// is then true and the caller must finish it).
func (t *inflightTable) join(key string) (c *inflightCall, first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.m[key]; ok {
		return c, false
	}
	c = &inflightCall{done: make(chan struct{})}
	t.m[key] = c
	return c, true
}

func (t *inflightTable) finish(key string, c *inflightCall, res Result, err error) {
	c.res, c.err = res, err
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
	close(c.done)
}

// trackOnce meters a call that carries an idempotency id. It always waits
// for the commit, so the id is on disk before the answer leaves.
func (m *Meter) trackOnce(ctx context.Context, st *accountState, ev *Event) (Result, error) {
	key := st.id + "\x00" + ev.IdempotencyKey
	c, first := m.inflight.join(key)
	if !first {
		select {
		case <-c.done:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
		if c.err != nil {
			return Result{}, c.err
		}
		res := c.res
		res.Duplicate = true
		return res, nil
	}
	res, err := m.trackFirst(ctx, st, ev)
	m.inflight.finish(key, c, res, err)
	return res, err
}

func (m *Meter) trackFirst(ctx context.Context, st *accountState, ev *Event) (Result, error) {
	rec, found, err := m.store.Idempotency(ctx, st.id, ev.IdempotencyKey)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return m.record(ctx, st, ev, true)
	}
	st.mu.Lock()
	st.rollLocked(m.now().UTC())
	res := resultLocked(st, rec.Decision == Allowed, rec.Overage)
	st.mu.Unlock()
	res.Duplicate, res.EventID = true, EventID(rec.Node, rec.Seq)
	return res, nil
}
