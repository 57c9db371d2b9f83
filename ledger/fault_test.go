package ledger_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// faultSwitch is the test's end of the fault-injection seam: while set,
// every commit fails with its errno.
type faultSwitch struct{ errno atomic.Value }

func (f *faultSwitch) set(e syscall.Errno) { f.errno.Store(e) }

func (f *faultSwitch) BeforeCommit() error {
	if e, _ := f.errno.Load().(syscall.Errno); e != 0 {
		return &os.PathError{Op: "write", Path: "meter.db", Err: e}
	}
	return nil
}

// faultRig is a meter on a ledger with injected faults, served over
// loopback HTTP.
type faultRig struct {
	l      *ledger.Ledger
	m      *meter.Meter
	url    string
	keys   map[string]string // account -> key
	client *http.Client
}

func newFaultRig(t *testing.T, async bool, faults *faultSwitch) *faultRig {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"),
		ledger.Options{NodeID: "f1", BeforeCommit: faults.BeforeCommit, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	// A Free plan of 20 calls, so its workers run into denials early even
	// on a slow machine.
	plans, err := meter.ParsePlans([]byte("plans:\n  free: {limit: 20, hard: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := meter.New(ctx, meter.Config{Store: l, Plans: plans, Async: async, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	r := &faultRig{l: l, m: m, keys: map[string]string{},
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	for _, a := range []struct{ id, plan string }{{"p1", "pro"}, {"p2", "pro"}, {"p3", "pro"}, {"f1", "free"}} {
		if _, err := m.CreateAccount(ctx, meter.Account{ID: a.id, Name: a.id, Email: a.id + "@x.test", Plan: a.plan}); err != nil {
			t.Fatal(err)
		}
		if _, r.keys[a.id], err = m.IssueKey(ctx, a.id); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Meter: m, AdminToken: "admin-token-for-fault-test", Usage: l}).Handler())
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// answer is one call's outcome, tagged by the unique latency it carried.
type answer struct {
	account string
	tag     int64 // latency in ms, unique per call
	code    int
	errCode string
	retry   string
}

func (r *faultRig) track(account string, tag int64) (answer, error) {
	body := fmt.Sprintf(`{"api_key":%q,"endpoint":"/v1/things","method":"GET","status":200,"latency_ms":%d}`, r.keys[account], tag)
	resp, err := r.client.Post(r.url+"/v1/track", "application/json", strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{account: account, tag: tag, code: resp.StatusCode, retry: resp.Header.Get("Retry-After")}
	if resp.StatusCode == http.StatusServiceUnavailable {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return a, err
		}
		a.errCode = e.Error.Code
	}
	return a, nil
}

// load runs 64 workers until stop closes; workers 0-7 call the Free
// account (which runs out and gets denials), the rest the Pro ones.
func (r *faultRig) load(t *testing.T, stop <-chan struct{}) []answer {
	var mu sync.Mutex
	var all []answer
	var wg sync.WaitGroup
	for w := range 64 {
		account := []string{"p1", "p2", "p3"}[w%3]
		if w < 8 {
			account = "f1"
		}
		wg.Go(func() {
			var mine []answer
			for i := int64(0); i < 50_000; i++ {
				select {
				case <-stop:
					mu.Lock()
					all = append(all, mine...)
					mu.Unlock()
					return
				default:
				}
				a, err := r.track(account, int64(w)*50_000+i)
				if err != nil {
					t.Error(err)
					return
				}
				mine = append(mine, a)
			}
		})
	}
	wg.Wait()
	return all
}

// TestLedger_CommitFaults is issue #11's acceptance test: 64-way load in
// sync and async mode with commits failing like ENOSPC or EIO for a
// while, then recovery. Every call answered 200 or 429 is in the ledger
// exactly once; every 503 carries Retry-After and the failure's code and
// is not in the ledger; counters equal events; verify passes.
func TestLedger_CommitFaults(t *testing.T) {
	for _, mode := range []string{"sync", "async"} {
		for _, fault := range []struct {
			errno syscall.Errno
			code  string
		}{{syscall.ENOSPC, "disk_full"}, {syscall.EIO, "ledger_unavailable"}} {
			t.Run(mode+"/"+fault.code, func(t *testing.T) {
				faults := &faultSwitch{}
				r := newFaultRig(t, mode == "async", faults)
				stop := make(chan struct{})
				go func() {
					time.Sleep(300 * time.Millisecond)
					faults.set(fault.errno)
					time.Sleep(500 * time.Millisecond)
					faults.set(0)
					time.Sleep(500 * time.Millisecond)
					close(stop)
				}()
				answers := r.load(t, stop)
				eventually(t, "flush", func() error { return r.l.Flush(ctx) })
				checkFaultOutcome(t, r, answers, fault.code)
			})
		}
	}
}

func checkFaultOutcome(t *testing.T, r *faultRig, answers []answer, code string) {
	t.Helper()
	kept := map[int64]answer{}
	codes := map[int]int{}
	for _, a := range answers {
		codes[a.code]++
		switch a.code {
		case http.StatusOK, http.StatusTooManyRequests:
			kept[a.tag] = a
		case http.StatusServiceUnavailable:
			if a.errCode != code || a.retry == "" {
				t.Fatalf("503 with code %q, Retry-After %q; want %q and a Retry-After", a.errCode, a.retry, code)
			}
		default:
			t.Fatalf("unexpected status %d", a.code)
		}
	}
	t.Logf("answers by status: %v", codes)
	if codes[http.StatusServiceUnavailable] == 0 || codes[http.StatusOK] == 0 || codes[http.StatusTooManyRequests] == 0 {
		t.Fatalf("the run did not exercise faults, successes and denials: %v", codes)
	}
	events, err := r.l.EventsAfter(ctx, 0, 1<<22)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	perAccount := map[string]meter.Counter{}
	var denied int64
	for _, ev := range events {
		c := perAccount[ev.AccountID]
		if ev.Decision == meter.Denied {
			// Answered denials are coalesced (coalesce.go): one record
			// may stand for several, so they are checked by number.
			c.Denied += ev.Calls()
			denied += ev.Calls()
			perAccount[ev.AccountID] = c
			continue
		}
		tag := ev.LatencyMicros / 1000
		a, ok := kept[tag]
		if !ok || seen[tag] {
			t.Fatalf("event %d (tag %d): answered %v, seen before %v", ev.Seq, tag, ok, seen[tag])
		}
		if wantDenied := a.code == http.StatusTooManyRequests; wantDenied != (ev.Decision == meter.Denied) {
			t.Fatalf("event %d: decision %v, answer %d", ev.Seq, ev.Decision, a.code)
		}
		seen[tag] = true
		c.Calls++
		perAccount[ev.AccountID] = c
	}
	if int64(len(seen))+denied != int64(len(kept)) || denied != int64(codes[http.StatusTooManyRequests]) {
		t.Fatalf("%d answered calls (%d denied), %d in the ledger (%d allowed, %d denied)",
			len(kept), codes[http.StatusTooManyRequests], int64(len(seen))+denied, len(seen), denied)
	}
	for id := range r.keys {
		q, err := r.m.Quota(id)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := r.l.Counter(ctx, id, q.Period.Start)
		want := perAccount[id]
		if err != nil || q.Calls != want.Calls || q.Denied != want.Denied || stored.Calls != want.Calls || stored.Denied != want.Denied {
			t.Fatalf("%s: meter %d/%d, ledger counter %d/%d, events %d/%d (calls/denied)",
				id, q.Calls, q.Denied, stored.Calls, stored.Denied, want.Calls, want.Denied)
		}
	}
	if rep := mustVerify(t, r.l); !rep.OK || rep.Events != int64(len(events)) {
		t.Fatalf("verify: %+v", rep)
	}
}

// TestLedger_RealFullDisk fills a real 8 MiB tmpfs: waiting appends get
// ErrDiskFull from the commit itself; answered (async) ones are held and
// retried while new writes are refused; once space returns everything held
// is committed and verify passes.
func TestLedger_RealFullDisk(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a tmpfs (CI runs as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	l, err := ledger.Open(filepath.Join(dir, "meter.db"), ledger.Options{NodeID: "t1", RetryMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.PutAccount(ctx, meter.Account{ID: "a", Name: "A", Email: "a@x.test", Plan: "pro"}); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 1500)
	bigEvent := func(d meter.Decision) *meter.Event {
		ev := newEvent("a", jan, d, false)
		ev.Endpoint = big
		return ev
	}
	calls, denied := 0, 0
	for range 20 {
		if err := l.Append(ctx, bigEvent(meter.Allowed), true); err != nil {
			t.Fatal(err)
		}
		calls++
	}
	filler := filepath.Join(dir, "filler")
	fillDisk(t, filler)
	for ; calls < 100_000; calls++ {
		if err = l.Append(ctx, bigEvent(meter.Allowed), true); err != nil {
			break
		}
	}
	if !errors.Is(err, ledger.ErrDiskFull) {
		t.Fatalf("after %d appends: want ErrDiskFull, got %v", calls, err)
	}
	// Answered writes are queued until the writer's failed commit makes
	// it refuse more; few enough that they fit once space returns.
	for ; denied < 500; denied++ {
		if err = l.Append(ctx, newEvent("a", jan, meter.Denied, false), false); err != nil {
			break
		}
	}
	eventually(t, "async writes refused while the held group fails", func() error {
		if err = l.Append(ctx, newEvent("a", jan, meter.Denied, false), false); err == nil {
			denied++
			return errors.New("still accepted")
		}
		return nil
	})
	if !errors.Is(err, ledger.ErrDiskFull) || denied == 0 {
		t.Fatalf("after %d async appends: want the held group to refuse writes with ErrDiskFull, got %v", denied, err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "flush after space returns", func() error { return l.Flush(ctx) })
	c, err := l.Counter(ctx, "a", jan)
	if err != nil || c.Calls != int64(calls) || c.Denied != int64(denied) {
		t.Fatalf("counter %+v (%v), want %d calls and %d held denials", c, err, calls, denied)
	}
	// The held denials may share records (coalesce.go): the counter
	// above is what says each one was kept.
	if rep := mustVerify(t, l); !rep.OK || rep.Events < int64(calls+1) || rep.Events > int64(calls+denied) {
		t.Fatalf("verify: %+v", rep)
	}
}

// fillDisk writes path until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}
