package meter

import (
	"container/heap"
	"encoding/base64"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"time"
)

// NearLimitPercent is the share of its limit at which an account counts as
// near it in the overview.
const NearLimitPercent = 80

// Bounds of one page of ListUsers.
const (
	DefaultUsersLimit = 50
	MaxUsersLimit     = 500
)

// Overview is the business at a glance, computed from the meter's memory:
// one pass over the accounts, no disk, no sorting.
type Overview struct {
	At time.Time
	// Users counts accounts per plan; every configured plan is present.
	Users map[string]int64
	Total int64
	// MRRCents sums the monthly price of every account (Plan.Price).
	MRRCents int64
	// OverageRevenueCents sums the overage cost each account has run up
	// in its current billing period, billed or not. For accounts without
	// a billing anchor that period is this UTC calendar month.
	OverageRevenueCents int64
	// AtLimit counts accounts on hard plans denied at least once this
	// period; NearLimit those using NearLimitPercent or more of a limit
	// (the ones at or past it included); InOverage soft-plan accounts past
	// their limit.
	AtLimit   int64
	NearLimit int64
	InOverage int64
}

// Overview returns the overview from running totals: O(plans), whatever
// the number of accounts.
func (m *Meter) Overview() Overview {
	now := m.Now()
	m.applyDuePlanChanges(now)
	o := Overview{At: now, Users: make(map[string]int64, len(m.plans.names))}
	for _, name := range m.plans.names {
		o.Users[name] = 0
	}
	m.totals.read(now, &o)
	m.clusterOverview(&o)
	return o
}

// states lists the account states. The read lock is held only to copy
// pointers, so a waiting CreateAccount never stalls the hot path for long.
func (m *Meter) states() []*accountState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*accountState, 0, len(m.accounts))
	for _, st := range m.accounts {
		out = append(out, st)
	}
	return out
}

// rollIfDueLocked is rollLocked without the period arithmetic in the common
// case where the period has not ended.
func (s *accountState) rollIfDueLocked(now time.Time) {
	if now.Before(s.period.End) {
		return
	}
	s.rollLocked(now)
}

// UserSort names the order of ListUsers.
type UserSort string

// Sort orders. Usage is calls as a share of the limit (0 for unlimited
// plans); ties are broken by account id, so the order is total.
const (
	SortUsage   UserSort = "usage"
	SortCalls   UserSort = "calls"
	SortName    UserSort = "name"
	SortCreated UserSort = "created"
)

var userSorts = []UserSort{SortUsage, SortCalls, SortName, SortCreated}

// UsersQuery selects one page of accounts.
type UsersQuery struct {
	// Plan keeps only accounts on this plan ("" for all).
	Plan string
	// Sort defaults to SortUsage.
	Sort UserSort
	// Order is "asc" or "desc"; "" means desc for usage and calls, asc for
	// name and created.
	Order string
	// Limit is the page size, 1..MaxUsersLimit (0 means DefaultUsersLimit).
	Limit int
	// Cursor is the NextCursor of the previous page ("" for the first).
	Cursor string
	// Search keeps only accounts whose id, name or email contains it,
	// ignoring case ("" for all).
	Search string
}

// UsersPage is one page of accounts with their current-period usage.
type UsersPage struct {
	Users []Quota
	// NextCursor fetches the next page; "" on the last one.
	NextCursor string
}

// ListUsers returns one page of accounts in a total order, with keyset
// pagination: the cursor holds the sort key of the last account returned,
// so accounts added or removed between pages never make a page repeat or
// skip an account whose sort key is unchanged. Usage and call counts move
// as calls arrive; an account whose count changes between two pages may
// move across the cursor. One page costs a pass over the accounts and a
// bounded heap of Limit entries, never a full sort.
func (m *Meter) ListUsers(q UsersQuery) (UsersPage, error) {
	if err := m.normalizeUsersQuery(&q); err != nil {
		return UsersPage{}, err
	}
	after, err := decodeUsersCursor(q)
	if err != nil {
		return UsersPage{}, err
	}
	desc := q.Order == "desc"
	now := m.Now()
	top := &pageHeap{desc: desc}
	more := false
	for _, st := range m.states() {
		st.mu.Lock()
		st.rollIfDueLocked(now)
		keep := (q.Plan == "" || st.plan.Name == q.Plan) && st.acct.matches(q.Search)
		var k userKey
		if keep {
			k = keyOfLocked(st, q.Sort)
		}
		st.mu.Unlock()
		if !keep || (after != nil && !k.after(*after, desc)) {
			continue
		}
		more = top.offer(pageEntry{key: k, st: st}, q.Limit) || more
	}
	return m.pageOf(q, top, more, now), nil
}

func (m *Meter) pageOf(q UsersQuery, top *pageHeap, more bool, now time.Time) UsersPage {
	entries := top.sorted()
	page := UsersPage{Users: make([]Quota, 0, len(entries))}
	for _, e := range entries {
		e.st.mu.Lock()
		e.st.rollIfDueLocked(now)
		page.Users = append(page.Users, e.st.snapshotLocked())
		e.st.mu.Unlock()
	}
	if more && len(entries) > 0 {
		page.NextCursor = encodeUsersCursor(q, entries[len(entries)-1].key)
	}
	return page
}

func (m *Meter) normalizeUsersQuery(q *UsersQuery) error {
	q.Search = strings.ToLower(strings.TrimSpace(q.Search))
	if len(q.Search) > 200 {
		return Invalid("q", "must be at most 200 bytes")
	}
	if q.Sort == "" {
		q.Sort = SortUsage
	}
	if !slices.Contains(userSorts, q.Sort) {
		return Invalid("sort", "must be one of usage, calls, name, created")
	}
	switch q.Order {
	case "":
		q.Order = "asc"
		if q.Sort == SortUsage || q.Sort == SortCalls {
			q.Order = "desc"
		}
	case "asc", "desc":
	default:
		return Invalid("order", "must be asc or desc")
	}
	if q.Limit == 0 {
		q.Limit = DefaultUsersLimit
	}
	if q.Limit < 1 || q.Limit > MaxUsersLimit {
		return Invalid("limit", "must be from 1 to %d", MaxUsersLimit)
	}
	if q.Plan != "" {
		if _, ok := m.plans.Get(q.Plan); !ok {
			return Invalid("plan", "unknown plan %q (have %v)", q.Plan, m.plans.Names())
		}
	}
	return nil
}

// userKey is an account's position in a sort order: num (an
// order-preserving encoding of a number), then str, then the account id.
type userKey struct {
	num uint64
	str string
	id  string
}

func keyOfLocked(st *accountState, sort UserSort) userKey {
	k := userKey{id: st.id}
	switch sort {
	case SortUsage:
		k.num = math.Float64bits(usageRatio(st.plan, st.calls))
	case SortCalls:
		k.num = uint64(max(st.calls, 0))
	case SortName:
		k.str = st.acct.Name
	case SortCreated:
		// Flipping the sign bit maps int64 order onto uint64 order.
		k.num = uint64(st.acct.CreatedAt.UnixNano()) ^ (1 << 63)
	}
	return k
}

// usageRatio is calls over the limit, unrounded (0 for unlimited plans).
// Its float64 bits order like the value because it is never negative.
func usageRatio(p Plan, calls int64) float64 {
	if p.Unlimited() || calls <= 0 {
		return 0
	}
	return float64(calls) / float64(p.Limit)
}

func (k userKey) compare(o userKey) int {
	switch {
	case k.num != o.num:
		if k.num < o.num {
			return -1
		}
		return 1
	case k.str != o.str:
		return strings.Compare(k.str, o.str)
	}
	return strings.Compare(k.id, o.id)
}

// after reports whether k comes after c in the page order.
func (k userKey) after(c userKey, desc bool) bool {
	if desc {
		return k.compare(c) < 0
	}
	return k.compare(c) > 0
}

// pageEntry is a candidate for the page.
type pageEntry struct {
	key userKey
	st  *accountState
}

// pageHeap keeps the first Limit entries of the page order seen so far;
// its root is the last of them, the one a better candidate evicts.
type pageHeap struct {
	desc    bool
	entries []pageEntry
}

func (h *pageHeap) Len() int           { return len(h.entries) }
func (h *pageHeap) Less(i, j int) bool { return h.entries[i].key.after(h.entries[j].key, h.desc) }
func (h *pageHeap) Swap(i, j int)      { h.entries[i], h.entries[j] = h.entries[j], h.entries[i] }
func (h *pageHeap) Push(x any)         { h.entries = append(h.entries, x.(pageEntry)) }
func (h *pageHeap) Pop() any {
	e := h.entries[len(h.entries)-1]
	h.entries = h.entries[:len(h.entries)-1]
	return e
}

// offer considers e and reports whether an entry fell off the page (so
// a next page exists).
func (h *pageHeap) offer(e pageEntry, limit int) bool {
	if len(h.entries) < limit {
		heap.Push(h, e)
		return false
	}
	if e.key.after(h.entries[0].key, h.desc) {
		return true
	}
	h.entries[0] = e
	heap.Fix(h, 0)
	return true
}

// sorted returns the entries in page order.
func (h *pageHeap) sorted() []pageEntry {
	out := slices.Clone(h.entries)
	slices.SortFunc(out, func(a, b pageEntry) int {
		if h.desc {
			return b.key.compare(a.key)
		}
		return a.key.compare(b.key)
	})
	return out
}

// usersCursorV1 versions the cursor layout: version, then sort, order and
// plan (a cursor only continues the listing it came from), then the key.
const usersCursorV1 = 1

func encodeUsersCursor(q UsersQuery, k userKey) string {
	b := []byte{usersCursorV1}
	for _, s := range [...]string{string(q.Sort), q.Order, q.Plan} {
		b = appendCursorString(b, s)
	}
	b = binary.BigEndian.AppendUint64(b, k.num)
	b = appendCursorString(b, k.str)
	b = appendCursorString(b, k.id)
	return base64.RawURLEncoding.EncodeToString(b)
}

func appendCursorString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errBadCursor = Invalid("cursor", "is not a cursor of this listing (sort, order and plan must match the request that returned it)")

// decodeUsersCursor returns the key to continue after (nil for the first
// page).
func decodeUsersCursor(q UsersQuery) (*userKey, error) {
	if q.Cursor == "" {
		return nil, nil
	}
	if len(q.Cursor) > 1024 {
		return nil, errBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
	if err != nil || len(b) == 0 || b[0] != usersCursorV1 {
		return nil, errBadCursor
	}
	r := cursorReader{b: b[1:]}
	sort, order, plan := r.string(), r.string(), r.string()
	k := userKey{num: r.uint64(), str: r.string(), id: r.string()}
	if r.bad || len(r.b) != 0 || sort != string(q.Sort) || order != q.Order || plan != q.Plan {
		return nil, errBadCursor
	}
	return &k, nil
}

// cursorReader reads a cursor front to back; bad records any short read.
type cursorReader struct {
	b   []byte
	bad bool
}

func (r *cursorReader) string() string {
	n, w := binary.Uvarint(r.b)
	if w <= 0 || n > uint64(len(r.b)-w) {
		r.bad, r.b = true, nil
		return ""
	}
	s := string(r.b[w : w+int(n)])
	r.b = r.b[w+int(n):]
	return s
}

func (r *cursorReader) uint64() uint64 {
	if len(r.b) < 8 {
		r.bad, r.b = true, nil
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}
