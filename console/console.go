// Package console serves meterd's web console (/ui/) and the customer
// usage page (/ui/usage) from assets embedded in the binary: plain HTML,
// CSS and JavaScript with the uPlot chart library vendored beside them,
// so the pages need nothing but meterd itself (no CDN, no web fonts, no
// build step).
//
// The package owns only static files and the headers they are served
// with. It must never read or hold credentials: the pages call meterd's
// JSON API from the browser with the admin token (console, kept in
// sessionStorage) or a portal token / API key (usage page).
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets/*.html assets/*.css assets/*.js assets/vendor/*
var assets embed.FS

// Options configure Handler.
type Options struct {
	// FrameAncestors are the origins allowed to embed /ui/usage in an
	// <iframe> (the console itself may never be framed).
	FrameAncestors []string
}

// Assets returns the embedded files (index.html, usage.html, ... and
// vendor/), for tests and tools.
func Assets() fs.FS {
	sub, _ := fs.Sub(assets, "assets")
	return sub
}

// Handler serves the console under /ui/: /ui/ is the operators' console,
// /ui/usage the customer usage page, /ui/static/* the files they load.
func Handler(opts Options) http.Handler {
	files := Assets()
	static := http.StripPrefix("/ui/static/", http.FileServerFS(files))
	usageCSP := pageCSP("'self' " + strings.Join(opts.FrameAncestors, " "))
	consoleCSP := pageCSP("'none'")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch p := path.Clean(r.URL.Path); {
		case p == "/ui":
			h.Set("Content-Security-Policy", consoleCSP)
			h.Set("X-Frame-Options", "DENY")
			serveFile(w, r, files, "index.html")
		case p == "/ui/usage":
			h.Set("Content-Security-Policy", usageCSP)
			serveFile(w, r, files, "usage.html")
		case strings.HasPrefix(p, "/ui/static/") && path.Ext(p) != "" && path.Ext(p) != ".html":
			static.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// pageCSP allows only meterd's own scripts, styles and API. uPlot sizes
// its elements through inline style attributes, hence style-src
// 'unsafe-inline'; scripts stay 'self' only.
func pageCSP(frameAncestors string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors " + frameAncestors
}

func serveFile(w http.ResponseWriter, r *http.Request, files fs.FS, name string) {
	b, err := fs.ReadFile(files, name)
	if err != nil {
		http.Error(w, "console asset missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}
