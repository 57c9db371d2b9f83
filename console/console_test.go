package console_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/meterd/meterd/console"
)

// TestAssets_VendoredUPlot: the embedded chart library is the version
// vendor.sh pins, with its licence, and the pages load nothing from
// outside meterd.
func TestAssets_VendoredUPlot(t *testing.T) {
	files := console.Assets()
	script, _ := os.ReadFile("assets/vendor.sh")
	m := regexp.MustCompile(`(?m)^VERSION=(\S+)$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("vendor.sh pins no VERSION")
	}
	version := string(m[1])
	js, err := fs.ReadFile(files, "vendor/uPlot.iife.min.js")
	if err != nil || !strings.HasPrefix(string(js), "/*! https://github.com/leeoniya/uPlot (v"+version+") */") {
		t.Errorf("uPlot.iife.min.js is not uPlot v%s (re-run sh console/assets/vendor.sh): %v", version, err)
	}
	if v, _ := fs.ReadFile(files, "vendor/VERSION"); strings.TrimSpace(string(v)) != "uplot@"+version {
		t.Errorf("vendor/VERSION says %q, vendor.sh pins %s", v, version)
	}
	if lic, _ := fs.ReadFile(files, "vendor/LICENSE"); !strings.Contains(string(lic), "MIT") {
		t.Error("uPlot's MIT licence is not vendored beside it")
	}
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`)
	fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		// embed.js runs on the embedding site and frames meterd's own
		// origin (taken from its src); its comment shows a full URL.
		if err != nil || d.IsDir() || strings.HasPrefix(path, "vendor/") || path == "embed.js" {
			return err
		}
		b, _ := fs.ReadFile(files, path)
		if external.Match(b) || strings.Contains(string(b), "@import") {
			t.Errorf("%s loads something from outside meterd", path)
		}
		return nil
	})
}

// TestHandler_Headers: pages carry a CSP that allows only meterd itself;
// the console can never be framed, the usage page only by the configured
// origins; unknown paths and directories are 404.
func TestHandler_Headers(t *testing.T) {
	h := console.Handler(console.Options{FrameAncestors: []string{"https://app.example.com"}})
	get := func(path string) *http.Response {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Result()
	}
	for _, c := range []struct {
		path, csp string
		status    int
	}{
		{"/ui/", "frame-ancestors 'none'", 200},
		{"/ui/usage", "frame-ancestors 'self' https://app.example.com", 200},
		{"/ui/static/app.js", "", 200},
		{"/ui/static/vendor/uPlot.iife.min.js", "", 200},
		{"/ui/static/", "", 404},
		{"/ui/static/vendor/", "", 404},
		{"/ui/static/index.html", "", 404},
		{"/ui/nothing", "", 404},
	} {
		resp := get(c.path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", c.path, resp.StatusCode, c.status)
			continue
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if c.csp != "" && (!strings.Contains(csp, c.csp) || !strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "connect-src 'self'")) {
			t.Errorf("%s: CSP %q", c.path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", c.path)
		}
		if c.status == 200 && len(body) == 0 {
			t.Errorf("%s: empty", c.path)
		}
	}
}
