// Command bare is the load benchmark's baseline: a net/http server that
// reads the request body and answers a small JSON document, doing nothing
// else. meterd's throughput is reported as a ratio of this one's.
package main

import (
	"io"
	"net/http"
	"os"
)

func main() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"allowed":true}` + "\n"))
	})
	if err := http.ListenAndServe(os.Args[1], h); err != nil {
		os.Exit(1)
	}
}
