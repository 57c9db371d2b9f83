package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The README's quick start works pasted as one block: it is run by bash
// in an empty directory, with the freshly built binary in place of its
// `go build` line and a free port in place of 8480.
func TestREADME_QuickStart(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	i := strings.Index(text, "## Quick start")
	if i < 0 {
		t.Fatal("README has no Quick start section")
	}
	block := text[i:]
	start := strings.Index(block, "```sh\n")
	end := strings.Index(block[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal("Quick start has no sh block")
	}
	script := block[start+6 : start+6+end]
	const build = "go build -o meterd ./cmd/meterd\n"
	if !strings.HasPrefix(script, build) {
		t.Fatalf("the quick start no longer starts with %q:\n%s", build, script)
	}
	addr := freeAddr(t)
	port := addr[strings.LastIndex(addr, ":")+1:]
	script = "cp \"$METERD_BIN\" meterd\n" + strings.TrimPrefix(script, build)
	script = strings.ReplaceAll(script, "localhost:8480", "localhost:"+port)
	script += "\nkill $! && wait\n"

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(cleanEnv(), "METERD_BIN="+bin, "METER_LISTEN="+addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quick start failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"allowed":true`, "X-Ratelimit-Remaining: 999", "acme", `"api_calls":1`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("quick start output lacks %q:\n%s", want, out)
		}
	}
}
