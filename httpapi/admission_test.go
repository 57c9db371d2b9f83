package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// admissionServer serves the API with the given in-flight bounds and an
// account with a key.
func admissionServer(t *testing.T, inFlight, queue int, wait time.Duration) (addr, key string) {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "meter.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	m, err := meter.New(context.Background(), meter.Config{Store: l})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateAccount(context.Background(), meter.Account{ID: "acct_adm", Name: "a", Plan: "pro"}); err != nil {
		t.Fatal(err)
	}
	if _, key, err = m.IssueKey(context.Background(), "acct_adm"); err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{Meter: m, AdminToken: testAdminToken,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxInFlight: inFlight, MaxQueue: queue, QueueWait: wait})
	hs := httptest.NewServer(api.Handler())
	t.Cleanup(hs.Close)
	return strings.TrimPrefix(hs.URL, "http://"), key
}

// stalledTrack opens a connection and sends a /v1/track whose body stops
// half way, so its handler holds an in-flight slot until finish is called;
// finish sends the rest and returns the status.
func stalledTrack(t *testing.T, addr, key string) (finish func() int) {
	t.Helper()
	body := fmt.Sprintf(`{"api_key":%q,"endpoint":"/v1/x","method":"GET"}`, key)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/track HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		addr, len(body), body[:10])
	return func() int {
		io.WriteString(conn, body[10:])
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
}

func track(t *testing.T, addr, key string) (*http.Response, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := http.Post("http://"+addr+"/v1/track", "application/json",
		strings.NewReader(fmt.Sprintf(`{"api_key":%q,"endpoint":"/v1/x","method":"GET"}`, key)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, time.Since(start)
}

// waitBusy polls until a request is refused, i.e. the stalled request's
// handler has taken its slot.
func waitBusy(t *testing.T, addr, key string) *http.Response {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if resp, _ := track(t, addr, key); resp.StatusCode == http.StatusServiceUnavailable {
			return resp
		}
	}
	t.Fatal("no request was ever refused")
	return nil
}

func TestAdmission(t *testing.T) {
	t.Parallel()
	t.Run("ShedsPastTheBound", func(t *testing.T) {
		addr, key := admissionServer(t, 1, 0, 0)
		finish := stalledTrack(t, addr, key)
		resp := waitBusy(t, addr, key)
		var body struct {
			Error struct{ Code, Message string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Code != "overloaded" || body.Error.Message == "" {
			t.Errorf("refusal body %+v (%v), want code overloaded", body, err)
		}
		if resp.Header.Get("Retry-After") != "1" || resp.Header.Get(httpapi.HeaderRequestID) == "" {
			t.Errorf("refusal headers %v, want Retry-After: 1 and a request id", resp.Header)
		}
		if resp, _ := http.Get("http://" + addr + "/healthz"); resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz while busy: %d, want 200", resp.StatusCode)
		}
		if code := finish(); code != http.StatusOK {
			t.Errorf("stalled call answered %d, want 200", code)
		}
		if resp, _ := track(t, addr, key); resp.StatusCode != http.StatusOK {
			t.Errorf("after the slot freed: %d, want 200", resp.StatusCode)
		}
	})
	t.Run("QueueWaitsForASlot", func(t *testing.T) {
		addr, key := admissionServer(t, 1, 1, 5*time.Second)
		finish := stalledTrack(t, addr, key)
		time.Sleep(300 * time.Millisecond) // let the stalled handler take the slot
		done := make(chan int, 1)
		go func() {
			resp, err := http.Post("http://"+addr+"/v1/track", "application/json",
				strings.NewReader(fmt.Sprintf(`{"api_key":%q,"endpoint":"/v1/x","method":"GET"}`, key)))
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		select {
		case code := <-done:
			t.Fatalf("queued call answered %d before the slot freed", code)
		case <-time.After(200 * time.Millisecond):
		}
		if code := finish(); code != http.StatusOK {
			t.Errorf("stalled call answered %d, want 200", code)
		}
		if code := <-done; code != http.StatusOK {
			t.Errorf("queued call answered %d, want 200", code)
		}
	})
	t.Run("QueueWaitIsBounded", func(t *testing.T) {
		addr, key := admissionServer(t, 1, 4, 100*time.Millisecond)
		finish := stalledTrack(t, addr, key)
		defer finish()
		resp := waitBusy(t, addr, key)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d", resp.StatusCode)
		}
		resp, took := track(t, addr, key)
		if resp.StatusCode != http.StatusServiceUnavailable || took < 100*time.Millisecond || took > 3*time.Second {
			t.Errorf("queued past the wait: %d after %v, want 503 after ~100ms", resp.StatusCode, took)
		}
	})
}
