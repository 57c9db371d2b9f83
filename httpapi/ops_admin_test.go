package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

const maintAdminToken = "mat_maintenance-test-token-5c1e"

// maintServer is the HTTP API with the ledger as its Maintenance.
type maintServer struct {
	ledger *ledger.Ledger
	meter  *meter.Meter
	url    string
	client *http.Client
}

// newMaintServer serves a fresh ledger, with maint as the Maintenance (the
// ledger itself when nil).
func newMaintServer(tb testing.TB, maint func(*ledger.Ledger) httpapi.Maintenance) *maintServer {
	tb.Helper()
	l, err := ledger.Open(filepath.Join(tb.TempDir(), ledger.FileName), ledger.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	m, err := meter.New(context.Background(), meter.Config{Store: l})
	if err != nil {
		tb.Fatal(err)
	}
	var mt httpapi.Maintenance = l
	if maint != nil {
		mt = maint(l)
	}
	api := httpapi.New(httpapi.Config{Meter: m, AdminToken: maintAdminToken, Usage: l, Maintenance: mt,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(api.Handler())
	tb.Cleanup(hs.Close)
	return &maintServer{ledger: l, meter: m, url: hs.URL,
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
}

func (s *maintServer) get(ctx context.Context, path, token string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return s.client.Do(req)
}

// ack is one acknowledged call: its event id and when the answer came.
type ack struct {
	id string
	at time.Time
}

// track meters one call and returns its event id on a 200.
func (s *maintServer) track(ctx context.Context, key string) (string, error) {
	body := fmt.Sprintf(`{"api_key":%q,"endpoint":"/v1/orders/42","method":"POST","status":201}`, key)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/track", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		EventID string `json:"event_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.EventID == "" {
		return "", fmt.Errorf("track: %d %+v %v", resp.StatusCode, out, err)
	}
	return out.EventID, nil
}

func (s *maintServer) mustKeys(tb testing.TB, n int) []string {
	tb.Helper()
	ctx := context.Background()
	var keys []string
	for i := range n {
		id := fmt.Sprintf("acct-%d", i)
		if _, err := s.meter.CreateAccount(ctx, meter.Account{ID: id, Name: id, Email: id + "@example.com", Plan: "pro"}); err != nil {
			tb.Fatal(err)
		}
		_, key, err := s.meter.IssueKey(ctx, id)
		if err != nil {
			tb.Fatal(err)
		}
		keys = append(keys, key)
	}
	return keys
}

// TestServer_Backup_UnderLoad takes a backup over HTTP while clients keep
// metering, restores it, and checks that the restored ledger verifies and
// holds every call acknowledged before the backup was asked for.
func TestServer_Backup_UnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newMaintServer(t, nil)
	keys := s.mustKeys(t, 4)

	var mu sync.Mutex
	var acks []ack
	record := func(id string) {
		mu.Lock()
		acks = append(acks, ack{id, time.Now()})
		mu.Unlock()
	}
	for i := range 40 {
		id, err := s.track(ctx, keys[i%len(keys)])
		if err != nil {
			t.Fatal(err)
		}
		record(id)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := s.track(ctx, keys[(g+i)%len(keys)])
				if err != nil {
					t.Error(err)
					return
				}
				record(id)
			}
		})
	}
	waitAcks := func(n int) {
		for {
			mu.Lock()
			got := len(acks)
			mu.Unlock()
			if got >= n || ctx.Err() != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitAcks(100) // the load is running

	began := time.Now()
	resp, err := s.get(ctx, "/api/admin/backup", maintAdminToken)
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, resp.Body)
	resp.Body.Close()
	if cerr := f.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	ended := time.Now()
	mu.Lock()
	during := len(acks)
	mu.Unlock()
	waitAcks(during + 50) // and it goes on after the backup
	close(stop)
	wg.Wait()

	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="meterd-`) || n == 0 {
		t.Fatalf("backup: %d %v, %d bytes", resp.StatusCode, resp.Header, n)
	}

	dir := t.TempDir()
	if err := ledger.Restore(ctx, backup, dir, ledger.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := ledger.Open(filepath.Join(dir, ledger.FileName), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := r.Verify(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("restored backup: %+v, %v", rep, err)
	}
	events, err := r.EventsAfter(ctx, 0, int(rep.LastSeq)+1)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for i := range events {
		held[events[i].ID()] = true
	}
	before, after := 0, 0
	for _, a := range acks {
		switch {
		case a.at.Before(began):
			before++
			if !held[a.id] {
				t.Errorf("call %s, acknowledged before the backup began, is not in it", a.id)
			}
		// A call answered after the backup ended may still be in it: it
		// can commit before the snapshot and be answered later.
		case a.at.After(ended):
			after++
		}
	}
	if before < 100 || after < 50 || int(rep.Events) < before || int(rep.Events) > len(acks) {
		t.Fatalf("%d acks before, %d after, %d in all; backup holds %d events", before, after, len(acks), rep.Events)
	}
	t.Logf("backup of %d bytes in %v: %d events; %d calls acknowledged before it, %d during, %d after",
		n, ended.Sub(began), rep.Events, before, len(acks)-before-after, after)
}

func TestServer_Verify(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newMaintServer(t, nil)
	keys := s.mustKeys(t, 2)
	for i := range 6 {
		if _, err := s.track(ctx, keys[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := s.get(ctx, "/api/admin/verify", maintAdminToken)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep struct {
		OK       bool              `json:"ok"`
		Events   int               `json:"events"`
		LastSeq  int               `json:"last_seq"`
		Accounts int               `json:"accounts"`
		Keys     int               `json:"keys"`
		Counters map[string]int    `json:"counters"`
		Problems []json.RawMessage `json:"problems"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" ||
		!rep.OK || rep.Events != 6 || rep.LastSeq != 6 || rep.Accounts != 2 || rep.Keys != 2 ||
		rep.Counters["checked"] != 2 || rep.Problems == nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %d %+v", resp.StatusCode, rep)
	}
}

func TestServer_Maintenance_Errors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Run("admin only", func(t *testing.T) {
		s := newMaintServer(t, nil)
		for _, path := range []string{"/api/admin/backup", "/api/admin/verify"} {
			for _, token := range []string{"", "wrong-token"} {
				resp, err := s.get(ctx, path, token)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized || !bytes.Contains(body, []byte(`"code":"unauthorized"`)) {
					t.Errorf("%s with token %q: %d %s", path, token, resp.StatusCode, body)
				}
			}
		}
	})
	t.Run("not configured", func(t *testing.T) {
		s := newMaintServer(t, func(*ledger.Ledger) httpapi.Maintenance { return nil })
		resp, err := s.get(ctx, "/api/admin/backup", maintAdminToken)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("backup without Maintenance: %d", resp.StatusCode)
		}
	})
	t.Run("fails before the first byte", func(t *testing.T) {
		s := newMaintServer(t, nil)
		s.ledger.Close() // a closed ledger cannot begin the snapshot
		resp, err := s.get(ctx, "/api/admin/backup", maintAdminToken)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Disposition") != "" ||
			!bytes.Contains(body, []byte(`"code":"internal"`)) {
			t.Fatalf("backup of a closed ledger: %d %v %s", resp.StatusCode, resp.Header, body)
		}
	})
	t.Run("fails half-way", func(t *testing.T) {
		s := newMaintServer(t, func(l *ledger.Ledger) httpapi.Maintenance { return halfBackup{l} })
		resp, err := s.get(ctx, "/api/admin/backup", maintAdminToken)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err == nil {
			t.Fatalf("a backup cut half-way read as whole: %d, %d bytes, %v", resp.StatusCode, n, err)
		}
	})
}

// halfBackup streams 64 KiB of the real snapshot and then fails, as a disk
// error half-way through would.
type halfBackup struct{ *ledger.Ledger }

func (h halfBackup) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var buf bytes.Buffer
	if _, err := h.Ledger.Backup(ctx, &buf); err != nil {
		return 0, err
	}
	n, err := w.Write(buf.Bytes()[:min(buf.Len(), 64<<10)])
	if err != nil {
		return int64(n), err
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	return int64(n), errors.New("read error half-way")
}
