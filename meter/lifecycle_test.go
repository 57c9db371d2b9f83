package meter_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/meterd/meterd/meter"
)

func TestMeter_SuspendResumeDelete(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "meter.db")
	m, l := mustOpenMeter(t, path, clk)
	mustAccount(t, m, "a1", "pro")
	_, plaintext, err := m.IssueKey(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := track(m, "a1"); err != nil {
		t.Fatal(err)
	}

	t.Run("Suspend", func(t *testing.T) {
		if _, err := m.SuspendAccount(ctx, "a1"); err != nil {
			t.Fatal(err)
		}
		res, err := m.Track(ctx, meter.Call{APIKey: plaintext, Endpoint: "/x", Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed || res.AccountStatus != meter.StatusSuspended {
			t.Fatalf("suspended call: allowed=%v status=%q", res.Allowed, res.AccountStatus)
		}
		q, _ := m.Quota("a1")
		if q.Calls != 1 || q.Denied != 1 {
			t.Fatalf("calls=%d denied=%d, want 1 and 1", q.Calls, q.Denied)
		}
	})
	t.Run("Resume", func(t *testing.T) {
		if _, err := m.ResumeAccount(ctx, "a1"); err != nil {
			t.Fatal(err)
		}
		if res, err := track(m, "a1"); err != nil || !res.Allowed {
			t.Fatalf("resumed call: %+v, %v", res, err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		a, err := m.DeleteAccount(ctx, "a1")
		if err != nil || a.Status() != meter.StatusDeleted {
			t.Fatalf("delete: %+v, %v", a, err)
		}
		if _, err := m.Track(ctx, meter.Call{APIKey: plaintext, Endpoint: "/x", Method: "GET"}); !errors.Is(err, meter.ErrUnknownKey) {
			t.Fatalf("key of a deleted account: err = %v, want ErrUnknownKey", err)
		}
		if res, err := track(m, "a1"); err != nil || res.Allowed || res.AccountStatus != meter.StatusDeleted {
			t.Fatalf("call by account id: %+v, %v", res, err)
		}
		if _, _, err := m.IssueKey(ctx, "a1"); !errors.Is(err, meter.ErrAccountDeleted) {
			t.Fatalf("issue key: %v, want ErrAccountDeleted", err)
		}
		if _, err := m.CreateAccount(ctx, meter.Account{ID: "a1", Name: "again"}); !errors.Is(err, meter.ErrAccountExists) {
			t.Fatalf("reuse id: %v, want ErrAccountExists", err)
		}
		if _, err := m.DeleteAccount(ctx, "a1"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		q, _ := m.Quota("a1")
		if q.Calls != 2 {
			t.Fatalf("history lost: calls=%d, want 2", q.Calls)
		}
	})
	t.Run("SurvivesRestart", func(t *testing.T) {
		l.Close()
		m2, _ := mustOpenMeter(t, path, clk)
		a, err := m2.Account("a1")
		if err != nil || a.Status() != meter.StatusDeleted {
			t.Fatalf("after restart: %+v, %v", a, err)
		}
		for _, k := range m2.KeysOf("a1") {
			if !k.Revoked() {
				t.Fatalf("key %s not revoked after restart", k.ID)
			}
		}
	})
}

func TestMeter_ListAccounts(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	m, _ := mustOpenMeter(t, filepath.Join(t.TempDir(), "meter.db"), clk)
	for _, id := range []string{"c", "a", "e", "b", "d"} {
		mustAccount(t, m, id, "free")
	}
	m.SuspendAccount(context.Background(), "d")
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := m.ListAccounts(cursor, 2, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Accounts {
			got = append(got, a.ID)
		}
		if p.Next == "" {
			if pages != 2 {
				t.Fatalf("pages = %d, want 3", pages+1)
			}
			break
		}
		cursor = p.Next
	}
	if want := "a b c d e"; fmtIDs(got) != want {
		t.Fatalf("ids = %q, want %q", fmtIDs(got), want)
	}
	p, _ := m.ListAccounts("", 0, meter.StatusSuspended)
	if len(p.Accounts) != 1 || p.Accounts[0].ID != "d" {
		t.Fatalf("suspended filter: %+v", p.Accounts)
	}
	if _, err := m.ListAccounts("", 5000, ""); err == nil {
		t.Fatal("limit 5000 accepted")
	}
}

func fmtIDs(ids []string) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += " "
		}
		s += id
	}
	return s
}
