package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// ExampleServer builds the HTTP API over a ledger and a meter and meters
// one call. The clock is fixed so the output is stable; in production
// leave meter.Config.Now nil and serve Handler() with NewHTTPServer.
func ExampleServer() {
	dir, err := os.MkdirTemp("", "meterd-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := ledger.Open(filepath.Join(dir, "meter.db"), ledger.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	ctx := context.Background()
	now := func() time.Time { return time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC) }
	m, err := meter.New(ctx, meter.Config{Store: l, Plans: meter.DefaultPlans(), Now: now})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := m.CreateAccount(ctx, meter.Account{ID: "acct_example", Name: "Example", Plan: "free"}); err != nil {
		log.Fatal(err)
	}
	// Naming the account by account_id needs the service token; without
	// one, only the account's API keys meter.
	srv := httpapi.New(httpapi.Config{Meter: m, AdminToken: "change-me", ServiceToken: "change-me-too", Usage: l})

	body := `{"account_id":"acct_example","endpoint":"/v1/users/42","method":"GET","latency_ms":12}`
	req := httptest.NewRequest(http.MethodPost, "/v1/track", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer change-me-too")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)

	var answer struct {
		Allowed   bool   `json:"allowed"`
		Plan      string `json:"plan"`
		Limit     int64  `json:"limit"`
		Remaining int64  `json:"remaining"`
		Reset     int64  `json:"reset"`
		Overage   bool   `json:"overage"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Code, "X-RateLimit-Remaining:", rec.Header().Get("X-RateLimit-Remaining"))
	fmt.Printf("allowed=%v plan=%s limit=%d remaining=%d overage=%v\n",
		answer.Allowed, answer.Plan, answer.Limit, answer.Remaining, answer.Overage)
	fmt.Println("resets at", time.Unix(answer.Reset, 0).UTC().Format(time.RFC3339))
	// Output:
	// 200 X-RateLimit-Remaining: 999
	// allowed=true plan=free limit=1000 remaining=999 overage=false
	// resets at 2026-04-01T00:00:00Z
}
