package httpapi_test

import (
	"io"
	"log"
	"net/http"
	"os"

	"github.com/meterd/meterd/client"
	"github.com/meterd/meterd/httpapi"
)

// ExampleRemoteMiddleware meters a Go service through a meterd running
// beside it (meterd serve --listen 127.0.0.1:8480). The service keeps no
// ledger of its own, so any number of replicas can share one meterd.
func ExampleRemoteMiddleware() {
	c, err := client.New("http://127.0.0.1:8480", client.WithServiceToken(os.Getenv("METER_SERVICE_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "thing for "+r.Header.Get(httpapi.HeaderAccount))
	})
	// false: fail closed (503) while meterd is unreachable.
	handler := httpapi.RemoteMiddleware(c, false, httpapi.WithStripKey())(mux)
	_ = http.ListenAndServe // e.g. http.ListenAndServe(":3000", handler)
	_ = handler
}
