// Command upstream is a tiny API to put behind meterd in the examples: it
// knows nothing about metering, which is the point. It reads the account
// meterd (or the gateway) passes in X-Meter-Account, and copies rate-limit
// fields a gateway hands it as request headers onto its answers (Traefik
// can pass meterd's fields only to the API, not to the client, on success).
//
//	go run ./examples/upstream -listen 127.0.0.1:3000
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3000", "address to serve the API on")
	flag.Parse()
	srv := &http.Server{Addr: *listen, Handler: newAPI(), ReadHeaderTimeout: 5 * time.Second}
	log.Printf("upstream API listening on %s", *listen)
	log.Fatal(srv.ListenAndServe())
}

// newAPI returns the API's routes, wrapped to mirror rate-limit fields.
func newAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /v1/things", listThings)
	mux.HandleFunc("GET /v1/things/{id}", getThing)
	mux.HandleFunc("POST /v1/things", createThing)
	mux.HandleFunc("GET /v1/slow", slow)
	mux.HandleFunc("GET /v1/stream", stream)
	return mirrorRateLimit(mux)
}

type thing struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Account string `json:"account,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func listThings(w http.ResponseWriter, r *http.Request) {
	acct := r.Header.Get("X-Meter-Account")
	writeJSON(w, http.StatusOK, map[string]any{"things": []thing{
		{ID: "1", Name: "first", Account: acct}, {ID: "2", Name: "second", Account: acct}}})
}

func getThing(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := strconv.Atoi(id); err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such thing"})
		return
	}
	writeJSON(w, http.StatusOK, thing{ID: id, Name: "thing " + id, Account: r.Header.Get("X-Meter-Account")})
}

func createThing(w http.ResponseWriter, r *http.Request) {
	var t thing
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&t); err != nil || t.Name == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"name": "..."}`})
		return
	}
	t.ID, t.Account = strconv.FormatInt(time.Now().UnixNano(), 36), r.Header.Get("X-Meter-Account")
	writeJSON(w, http.StatusCreated, t)
}

// slow answers after ?ms= milliseconds (default 100, at most 10 s), to see
// latency in /api/usage/endpoints.
func slow(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 {
		ms = 100
	}
	select {
	case <-time.After(time.Duration(min(ms, 10000)) * time.Millisecond):
	case <-r.Context().Done():
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"slept_ms": ms})
}

// stream sends ?mb= MiB (default 10, at most 1024) in flushed 64 KiB
// chunks, to watch a proxy pass a large body through without buffering.
func stream(w http.ResponseWriter, r *http.Request) {
	mb, err := strconv.Atoi(r.URL.Query().Get("mb"))
	if err != nil || mb < 0 {
		mb = 10
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	chunk := []byte(strings.Repeat("meterd streams! ", 4096))
	rc := http.NewResponseController(w)
	for range min(mb, 1024) * 16 {
		if _, err := w.Write(chunk); err != nil {
			return
		}
		rc.Flush()
	}
}

// rateLimitFields are the fields meterd answers with.
var rateLimitFields = []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
	"RateLimit-Policy", "RateLimit", "X-RateLimit-Warning"}

// mirrorRateLimit copies rate-limit fields the gateway set on the request
// onto the response, unless the response already has them (meterd's proxy
// adds its own on the way back).
func mirrorRateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, f := range rateLimitFields {
			if v := r.Header.Get(f); v != "" {
				w.Header().Set(f, v)
			}
		}
		next.ServeHTTP(w, r)
	})
}
