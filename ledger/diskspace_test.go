package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// fakeDisk is a free-space probe the test turns up and down.
type fakeDisk struct {
	mu    sync.Mutex
	free  uint64
	err   error
	calls int
	paths []string
}

func (d *fakeDisk) FreeSpace(path string) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	d.paths = append(d.paths, path)
	return d.free, d.err
}

func (d *fakeDisk) set(free uint64, err error) {
	d.mu.Lock()
	d.free, d.err = free, err
	d.mu.Unlock()
}

func (d *fakeDisk) probes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

const diskFloor = 64 << 20

func mustOpenDiskLedger(tb testing.TB, disk *fakeDisk) *ledger.Ledger {
	tb.Helper()
	l, err := ledger.Open(filepath.Join(tb.TempDir(), "meter.db"),
		ledger.Options{NodeID: "d1", MinFreeBytes: diskFloor, FreeSpace: disk.FreeSpace})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// eventually retries fn until it returns nil, for up to 5 s: the probe is
// cached for a second, so the ledger notices a change within about one.
func eventually(tb testing.TB, what string, fn func() error) {
	tb.Helper()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = fn(); err == nil {
			return
		}
	}
	tb.Fatalf("%s: still %v after 5s", what, err)
}

func TestLedger_DiskFloor(t *testing.T) {
	ctx := context.Background()
	disk := &fakeDisk{free: 10 * diskFloor}
	l := mustOpenDiskLedger(t, disk)
	mustPutAccounts(t, l, "a")
	var acked int64
	appendOne := func() error {
		ev := verifyEvent("a", verifyMarch.Add(time.Duration(acked)*time.Minute), "/v1/things", meter.Allowed, false, 200)
		err := l.Append(ctx, ev, true)
		if err == nil {
			acked++
		}
		return err
	}
	for range 5 {
		if err := appendOne(); err != nil {
			t.Fatal(err)
		}
	}
	if free, err := l.FreeBytes(); err != nil || free != 10*diskFloor {
		t.Fatalf("FreeBytes %d, %v", free, err)
	}

	disk.set(diskFloor-1, nil)
	var refused error
	eventually(t, "writes refused", func() error {
		if err := appendOne(); err != nil {
			refused = err
			return nil
		}
		return errors.New("append still succeeds")
	})
	if !errors.Is(refused, ledger.ErrDiskFull) || !errors.Is(refused, meter.ErrOverloaded) ||
		!strings.Contains(refused.Error(), "67108863 bytes free, floor 67108864") {
		t.Fatalf("refusal %v", refused)
	}
	seq, _ := l.LastSeq(ctx)
	if err := l.PutAccount(ctx, meter.Account{ID: "b"}); !errors.Is(err, ledger.ErrDiskFull) {
		t.Fatalf("put account with a full disk: %v", err)
	}
	// Reads go on; the refused writes left no trace.
	c, err := l.Counter(ctx, "a", verifyMarch)
	if err != nil || c.Calls != acked || uint64(acked) != seq {
		t.Fatalf("counter %+v (%v), acked %d, last seq %d", c, err, acked, seq)
	}

	disk.set(diskFloor, nil)
	eventually(t, "writes resumed", appendOne)
	rep := mustVerify(t, l)
	if !rep.OK || rep.Events != acked || rep.LastSeq != uint64(acked) {
		t.Fatalf("after resume: acked %d, %+v", acked, rep)
	}

	// A probe that fails does not stop metering.
	disk.set(0, errors.New("statfs: input/output error"))
	time.Sleep(1100 * time.Millisecond)
	if err := appendOne(); err != nil {
		t.Fatalf("append with a failing probe: %v", err)
	}
	if _, err := l.FreeBytes(); err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("FreeBytes error %v", err)
	}

	// The probe asks about the ledger's directory, about once a second
	// however many commits there are.
	before, start := disk.probes(), time.Now()
	for range 20 {
		if err := appendOne(); err != nil {
			t.Fatal(err)
		}
	}
	if n, most := disk.probes()-before, int(time.Since(start)/time.Second)+1; n > most {
		t.Fatalf("%d probes for 20 commits in %v", n, time.Since(start))
	}
	disk.mu.Lock()
	defer disk.mu.Unlock()
	if disk.paths[0] != filepath.Dir(l.Path()) {
		t.Fatalf("probed %q, want the ledger's directory", disk.paths[0])
	}
}

func TestStatfsFree(t *testing.T) {
	free, err := ledger.StatfsFree(t.TempDir())
	if err != nil || free == 0 {
		t.Fatalf("StatfsFree: %d, %v", free, err)
	}
	if _, err := ledger.StatfsFree(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("no error for a missing directory")
	}
	l := MustOpenLedger(t) // no floor: writes never probe
	mustPutAccounts(t, l, "a")
	if l.MinFreeBytes() != 0 {
		t.Fatalf("default floor %d", l.MinFreeBytes())
	}
}

// diskAPI is the HTTP API over a ledger with a fake disk.
type diskAPI struct {
	url, key string
	client   *http.Client
}

func (a *diskAPI) do(tb testing.TB, method, path, body string) (int, http.Header, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("X-API-Key", a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		tb.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, out
}

func (a *diskAPI) track(tb testing.TB) (int, http.Header, map[string]any) {
	return a.do(tb, http.MethodPost, "/v1/track", `{"endpoint":"/v1/things","method":"GET"}`)
}

// TestLedger_DiskFloor_HTTP: with the disk below the floor, calls get a
// clear 503 with Retry-After, usage reads still answer, nothing
// acknowledged is lost, and calls succeed again once space returns.
func TestLedger_DiskFloor_HTTP(t *testing.T) {
	ctx := context.Background()
	disk := &fakeDisk{free: 10 * diskFloor}
	l := mustOpenDiskLedger(t, disk)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	m, err := meter.New(ctx, meter.Config{Store: l, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateAccount(ctx, meter.Account{ID: "acme", Name: "Acme", Email: "ops@acme.test", Plan: "pro"}); err != nil {
		t.Fatal(err)
	}
	_, key, err := m.IssueKey(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Meter: m, AdminToken: "admin-token-for-disk-test", Usage: l}).Handler())
	t.Cleanup(srv.Close)
	api := &diskAPI{url: srv.URL, key: key, client: &http.Client{Timeout: 30 * time.Second}}

	acked := 0
	for range 3 {
		if code, _, body := api.track(t); code != http.StatusOK || body["allowed"] != true {
			t.Fatalf("track: %d %v", code, body)
		}
		acked++
	}
	disk.set(1<<20, nil)
	var hdr http.Header
	var body map[string]any
	eventually(t, "503", func() error {
		code, h, b := api.track(t)
		if code == http.StatusOK {
			acked++
			return errors.New("still 200")
		}
		if code != http.StatusServiceUnavailable {
			t.Fatalf("track with a full disk: %d %v", code, b)
		}
		hdr, body = h, b
		return nil
	})
	apiErr, _ := body["error"].(map[string]any)
	if hdr.Get("Retry-After") == "" || apiErr["code"] != "disk_full" {
		t.Fatalf("503 without Retry-After or code: %v %v", hdr, body)
	}
	for range 3 { // still refused, and not counted
		if code, _, _ := api.track(t); code != http.StatusServiceUnavailable {
			t.Fatalf("track: %d", code)
		}
	}
	code, _, usage := api.do(t, http.MethodGet, "/api/usage/current", "")
	if code != http.StatusOK || usage["api_calls"] != float64(acked) {
		t.Fatalf("usage with a full disk: %d %v, acked %d", code, usage, acked)
	}
	code, _, hist := api.do(t, http.MethodGet, "/api/usage/history?days=1", "")
	days, _ := hist["days"].([]any)
	if code != http.StatusOK || len(days) != 1 || days[0].(map[string]any)["api_calls"] != float64(acked) {
		t.Fatalf("history with a full disk: %d %v", code, hist)
	}

	disk.set(10*diskFloor, nil)
	eventually(t, "200 again", func() error {
		if code, _, _ := api.track(t); code != http.StatusOK {
			return errors.New("still refused")
		}
		acked++
		return nil
	})
	code, _, usage = api.do(t, http.MethodGet, "/api/usage/current", "")
	c, err := l.Counter(ctx, "acme", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if code != http.StatusOK || usage["api_calls"] != float64(acked) || c.Calls != int64(acked) {
		t.Fatalf("after resume: usage %v, ledger counter %+v (%v), acked %d", usage, c, err, acked)
	}
	if rep := mustVerify(t, l); !rep.OK || rep.Events != int64(acked) {
		t.Fatalf("verify after resume: acked %d, %+v", acked, rep)
	}
}
