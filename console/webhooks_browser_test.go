package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// hookSink is a real webhook receiver: it fails with 503 until told
// otherwise, and verifies what it accepts with the Standard Webhooks
// library and the secret the console showed.
type hookSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	fail   bool
	secret string
	got    map[string]string // webhook-id -> event type
	bad    []string
}

func newHookSink(t *testing.T) *hookSink {
	s := &hookSink{fail: true, got: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		wh, err := standardwebhooks.NewWebhook(s.secret)
		if err == nil {
			err = wh.Verify(body, r.Header)
		}
		if err != nil {
			s.bad = append(s.bad, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var ev struct {
			Type string `json:"type"`
		}
		json.Unmarshal(body, &ev)
		s.got[r.Header.Get("webhook-id")] = ev.Type
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// TestConsole_Webhooks adds an endpoint from the Webhooks page (the
// secret shown once), makes a Free account cross 80 % (800 of 1,000
// calls) while the receiver is down, sees the delivery dead in the log
// with its attempts and last answer, replays it from the keyboard once
// the receiver is back, and sees it delivered — signed with the secret
// the page showed. Both pages fit 375 px.
func TestConsole_Webhooks(t *testing.T) {
	ctx := browser(t, 1280, 1000)
	d := openMeterdWith(t, meterdOptions{webhooks: true, plans: "plans:\n  free: {limit: 1000, hard: true}\n"})
	sink := newHookSink(t)
	d.createAccount(t, "acct_free", "Free Co", "free")
	signIn(t, ctx, d.HTTP.URL)

	run(t, ctx, chromedp.Navigate(d.HTTP.URL+"/ui/#/webhooks"),
		chromedp.WaitVisible(chromedp.CSS(`#webhooks p`)),
		chromedp.SendKeys(chromedp.ID("wh-url"), sink.srv.URL+"/hooks"),
		chromedp.SendKeys(chromedp.ID("wh-desc"), "quota mails"),
		chromedp.Click(chromedp.CSS(`input[name=types][value="usage.threshold_reached"]`)),
		chromedp.Click(chromedp.ID("wh-submit")),
		chromedp.WaitVisible(chromedp.ID("wh-secret-value")),
		chromedp.WaitVisible(chromedp.CSS(`#webhooks tr[data-webhook]`)),
	)
	if n := eval[int](t, ctx, `Array.from(document.querySelectorAll("#view input,#view select")).filter(e => !e.labels || !e.labels.length).length`); n != 0 {
		t.Errorf("%d controls on the Webhooks page have no label", n)
	}
	secret := eval[string](t, ctx, `document.getElementById("wh-secret-value").textContent`)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("shown secret %q", secret)
	}
	sink.mu.Lock()
	sink.secret = secret
	sink.mu.Unlock()
	id := eval[string](t, ctx, `document.querySelector("#webhooks tr[data-webhook]").dataset.webhook`)
	row := eval[string](t, ctx, `document.querySelector("#webhooks tr[data-webhook]").textContent`)
	if !strings.Contains(row, "enabled") || !strings.Contains(row, "usage.threshold_reached") || !strings.Contains(row, "quota mails") {
		t.Errorf("endpoint row reads %q", row)
	}
	// Once: after "I have copied it" and a reload, the secret is nowhere.
	run(t, ctx, chromedp.Click(chromedp.ID("wh-secret-done")), chromedp.WaitNotPresent(chromedp.ID("wh-secret-value")),
		chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#webhooks tr[data-webhook]`)))
	if html := eval[string](t, ctx, `document.documentElement.outerHTML + JSON.stringify(sessionStorage)`); strings.Contains(html, secret) {
		t.Error("the secret is still in the page or storage after it was dismissed")
	}

	d.track(t, "acct_free", "/v1/x", 800) // the 80 % crossing
	run(t, ctx, chromedp.Click(chromedp.CSS(`#webhooks tr[data-webhook] a`)), chromedp.WaitVisible(chromedp.ID("wh-log")))
	waitRow := func(status string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			run(t, ctx, chromedp.Click(chromedp.ID("wh-refresh")))
			if eval[bool](t, ctx, `!!document.querySelector('#wh-log tr[data-status="`+status+`"]')`) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s delivery in the log: %s", status, eval[string](t, ctx, `document.getElementById("wh-log").textContent`))
			}
		}
	}
	waitRow("dead")
	dead := eval[string](t, ctx, `document.querySelector('#wh-log tr[data-status="dead"]').textContent`)
	if !strings.Contains(dead, "usage.threshold_reached") || !strings.Contains(dead, "HTTP 503") || !strings.Contains(dead, "acct_free") {
		t.Errorf("dead delivery row reads %q", dead)
	}
	if n := eval[string](t, ctx, `document.querySelector('#wh-log tr[data-status="dead"] td.num').textContent`); n != "2" {
		t.Errorf("dead delivery shows %s attempts, want 2", n)
	}

	sink.mu.Lock()
	sink.fail = false
	sink.mu.Unlock()
	// Replay from the keyboard. The last refresh may still be re-rendering
	// the log (replacing the button under a node id already looked up), so
	// a vanished node is looked up again.
	for try := 0; ; try++ {
		err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("wh-replay")), chromedp.Focus(chromedp.ID("wh-replay")),
			chromedp.KeyEvent("\r"))
		if err == nil {
			break
		}
		if try == 10 || !strings.Contains(err.Error(), "Could not find node") {
			t.Fatalf("replay from the keyboard: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("wh-replay-msg").textContent.indexOf("Sending 1 dead delivery") === 0`)); err != nil {
		t.Fatalf("replay message: %v: %q, active %q", err, eval[string](t, ctx, `document.getElementById("wh-replay-msg").textContent`),
			eval[string](t, ctx, `document.activeElement.outerHTML`))
	}
	waitRow("delivered")
	notice := eval[string](t, ctx, `document.querySelector('#wh-log tr[data-status="delivered"]').dataset.notice`)
	sink.mu.Lock()
	got, bad := sink.got, sink.bad
	sink.mu.Unlock()
	if len(got) != 1 || got[notice] != "usage.threshold_reached" || len(bad) != 0 {
		t.Errorf("receiver got %v (bad %v), want %s once", got, bad, notice)
	}

	t.Run("Narrow", func(t *testing.T) {
		for _, page := range []string{"#/webhooks", "#/webhooks/" + id} {
			run(t, ctx, chromedp.EmulateViewport(375, 800), chromedp.Navigate(d.HTTP.URL+"/ui/"+page),
				chromedp.WaitVisible(chromedp.CSS(`#webhooks table, #wh-log table`)))
			if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 375 {
				t.Errorf("%s is %d px wide at a 375 px viewport", page, w)
			}
		}
		screenshot(t, ctx, "webhooks-375")
	})
}
