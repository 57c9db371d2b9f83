package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nginxBinary finds nginx: METER_TEST_NGINX, else nginx on PATH (or in
// /usr/sbin, which a non-root PATH often lacks).
func nginxBinary() string {
	if p := os.Getenv("METER_TEST_NGINX"); p != "" {
		return p
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

// The shipped recipe, examples/nginx/meterd-authz.conf, in a real nginx
// between a client and an API, with meterd as auth_request: a Free key
// gets 1,000 answers from the API, then 429s with the rate-limit headers
// although auth_request cannot pass a 429 on.
func TestNginx_AuthRequestRecipe(t *testing.T) {
	bin := nginxBinary()
	if bin == "" {
		t.Skip("nginx absent: install it (apt-get install nginx) or set METER_TEST_NGINX to its path")
	}
	if out, err := exec.Command(bin, "-V").CombinedOutput(); err != nil || !bytes.Contains(out, []byte("http_auth_request_module")) {
		t.Fatalf("%s lacks the auth_request module (-V: %v):\n%s", bin, err, out)
	}
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_nginx", "free")
	up := mustUpstream(t, nil)
	addr := startNginx(t, bin, s.HTTP.Listener.Addr().String(), up.Listener.Addr().String())
	base := "http://" + addr
	hdr := map[string]string{"X-API-Key": key}

	resp := gwMustDo(t, s.Client, http.MethodGet, base+"/v1/things/1", hdr, "")
	if resp.Status != http.StatusOK || string(resp.Body) != "ok from upstream" {
		t.Fatalf("first call: %d %q, want the API's 200", resp.Status, resp.Body)
	}
	gwWantHeaders(t, resp.Header, map[string]string{"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "999",
		"X-RateLimit-Reset": fmt.Sprint(gwReset.Unix()), "RateLimit-Policy": `"free";q=1000;w=2678400`,
		"RateLimit": `"free";r=999;t=` + gwRetry, "X-RateLimit-Warning": "", "Retry-After": ""})
	if got := up.Last().Header.Get("X-Meter-Account"); got != "acct_nginx" {
		t.Errorf("the API saw X-Meter-Account %q, want acct_nginx", got)
	}

	codes := gwDoConcurrently(s.Client, base+"/v1/things/2", hdr, 999, 8)
	if codes[http.StatusOK] != 999 || len(codes) != 1 {
		t.Fatalf("calls 2 to 1000: status counts %v, want 999 x 200", codes)
	}
	for range 2 {
		resp = gwMustDo(t, s.Client, http.MethodGet, base+"/v1/things/3", hdr, "")
		if code := gwErrorCode(t, resp, http.StatusTooManyRequests); code != "quota_exceeded" {
			t.Errorf("code %q, want quota_exceeded", code)
		}
		if !bytes.Contains(resp.Body, []byte("Upgrade to Pro for more calls")) {
			t.Errorf("429 body %s lacks the upgrade message", resp.Body)
		}
		gwWantHeaders(t, resp.Header, map[string]string{"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0",
			"X-RateLimit-Reset": fmt.Sprint(gwReset.Unix()), "Retry-After": gwRetry,
			"RateLimit": `"free";r=0;t=` + gwRetry, "X-RateLimit-Warning": "100% of 1000 calls used this period"})
	}
	if n := up.hits.Load(); n != 1000 {
		t.Errorf("the API saw %d requests, want 1000", n)
	}

	resp = gwMustDo(t, s.Client, http.MethodGet, base+"/v1/things/4", nil, "")
	if code := gwErrorCode(t, resp, http.StatusUnauthorized); code != "unauthorized" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no key: code %q, WWW-Authenticate %q", code, resp.Header.Get("WWW-Authenticate"))
	}
	if q := s.quota("acct_nginx"); q.Calls != 1000 || q.Denied != 2 {
		t.Errorf("quota: %d calls %d denied, want 1000 and 2", q.Calls, q.Denied)
	}
}

// The recipe fails well: exactly one WWW-Authenticate on a 401, a
// suspended account stays a JSON 403, and with meterd stopped every call
// gets a JSON 503 with Retry-After (fail closed) and never reaches the API.
func TestNginx_FailsWell(t *testing.T) {
	bin := nginxBinary()
	if bin == "" {
		t.Skip("nginx absent: install it (apt-get install nginx) or set METER_TEST_NGINX to its path")
	}
	s := mustGWServer(t, gwOptions{})
	key := s.mustAccountKey("acct_ok", "free")
	suspended := s.mustAccountKey("acct_suspended", "pro")
	if _, err := s.Meter.SuspendAccount(context.Background(), "acct_suspended"); err != nil {
		t.Fatal(err)
	}
	up := mustUpstream(t, nil)
	addr := startNginx(t, bin, s.HTTP.Listener.Addr().String(), up.Listener.Addr().String())
	base := "http://" + addr

	t.Run("OneWWWAuthenticate", func(t *testing.T) {
		resp := gwMustDo(t, s.Client, http.MethodGet, base+"/v1/things/1", map[string]string{"X-API-Key": "mk_nope"}, "")
		gwErrorCode(t, resp, http.StatusUnauthorized)
		if got := resp.Header.Values("WWW-Authenticate"); len(got) != 1 {
			t.Errorf("WWW-Authenticate %q, want exactly one", got)
		}
	})
	t.Run("Suspended", func(t *testing.T) {
		resp := gwMustDo(t, s.Client, http.MethodGet, base+"/v1/things/1", map[string]string{"X-API-Key": suspended}, "")
		if code := gwErrorCode(t, resp, http.StatusForbidden); code != "account_suspended" {
			t.Errorf("code %q, want account_suspended", code)
		}
		if q := s.quota("acct_suspended"); q.Denied != 1 || q.Calls != 0 {
			t.Errorf("suspended account: %d calls %d denied, want 0 and 1", q.Calls, q.Denied)
		}
	})
	resp := gwMustDo(t, s.Client, http.MethodGet, base+"/v1/things/1", map[string]string{"X-API-Key": key}, "")
	if resp.Status != http.StatusOK {
		t.Fatalf("with meterd up: %d %s", resp.Status, resp.Body)
	}
	t.Run("MeterdStopped", func(t *testing.T) {
		s.HTTP.Close() // meterd gone: connections to its address are refused
		hits := up.hits.Load()
		for range 3 {
			resp := gwMustDo(t, s.Client, http.MethodGet, base+"/v1/things/2", map[string]string{"X-API-Key": key}, "")
			if code := gwErrorCode(t, resp, http.StatusServiceUnavailable); code != "meter_unavailable" {
				t.Errorf("code %q, want meter_unavailable", code)
			}
			if ra := resp.Header.Get("Retry-After"); ra == "" {
				t.Error("503 without Retry-After")
			}
		}
		if n := up.hits.Load(); n != hits {
			t.Errorf("the API saw %d calls while meterd was down, want none (fail closed)", n-hits)
		}
	})
}

// startNginx runs nginx in the foreground with the recipe between a
// loopback listener and the given meterd and API addresses, everything it
// writes in a temp dir, and stops it when the test ends. It returns the
// address nginx listens on.
func startNginx(tb testing.TB, bin, meterdAddr, apiAddr string) string {
	tb.Helper()
	recipe, err := filepath.Abs(filepath.Join("..", "examples", "nginx", "meterd-authz.conf"))
	if err != nil {
		tb.Fatal(err)
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and bind
		dir := tb.TempDir()
		addr := freeLoopbackAddr(tb)
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConfig(dir, addr, meterdAddr, apiAddr, recipe)), 0o600); err != nil {
			tb.Fatal(err)
		}
		if lastErr = runNginx(tb, bin, dir, conf, addr); lastErr == nil {
			return addr
		}
	}
	tb.Fatalf("start nginx: %v", lastErr)
	return ""
}

func nginxConfig(dir, addr, meterdAddr, apiAddr, recipe string) string {
	return fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream meterd { server %[3]s; keepalive 16; }
    upstream api { server %[4]s; keepalive 16; }
    server {
        listen %[2]s;
        include %[5]s;
    }
}
`, dir, addr, meterdAddr, apiAddr, recipe)
}

// runNginx starts nginx and waits until it accepts connections on addr.
func runNginx(tb testing.TB, bin, dir, conf, addr string) error {
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case err := <-exited:
			logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return fmt.Errorf("nginx exited: %v\n%s%s", err, out.String(), logs)
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			return errors.New("nginx did not accept connections within 15s")
		case <-time.After(50 * time.Millisecond):
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			tb.Cleanup(func() { stopNginx(tb, cmd, exited, dir) })
			return nil
		}
	}
}

// stopNginx asks nginx to quit, kills it if it will not, and reports
// errors it logged.
func stopNginx(tb testing.TB, cmd *exec.Cmd, exited chan error, dir string) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	if logs, _ := os.ReadFile(filepath.Join(dir, "error.log")); bytes.Contains(logs, []byte("[emerg]")) || bytes.Contains(logs, []byte("[crit]")) {
		tb.Errorf("nginx logged errors:\n%s", logs)
	}
}

// freeLoopbackAddr returns a 127.0.0.1 address nobody listens on now.
func freeLoopbackAddr(tb testing.TB) string {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return strings.TrimSpace(ln.Addr().String())
}
