package main_test

import (
	"bytes"
	"context"
	"debug/elf"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// dockerfile is the repository's Dockerfile, relative to this package.
const dockerfile = "../../Dockerfile"

// dockerBuild is what the Dockerfile's build stage does, as parsed from it.
type dockerBuild struct {
	env  []string // ENV settings of the build stage, KEY=value
	args []string // the `go build` arguments, variables expanded
}

// parseDockerBuild reads the build stage's ENV lines and its single
// `RUN go build` line, expanding ${VERSION} to version.
func parseDockerBuild(tb testing.TB, text, version string) dockerBuild {
	tb.Helper()
	var b dockerBuild
	stage := 0
	for _, line := range dockerLines(text) {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case strings.EqualFold(fields[0], "FROM"):
			stage++
		case stage == 1 && strings.EqualFold(fields[0], "ENV"):
			b.env = append(b.env, fields[1:]...)
		case stage == 1 && strings.EqualFold(fields[0], "RUN") && len(fields) > 2 && fields[1] == "go" && fields[2] == "build":
			if b.args != nil {
				tb.Fatal("Dockerfile: more than one `RUN go build` line")
			}
			words, err := shellWords(strings.ReplaceAll(line[strings.Index(line, "build")+len("build"):], "${VERSION}", version))
			if err != nil {
				tb.Fatalf("Dockerfile: go build line: %v", err)
			}
			b.args = words
		}
	}
	if b.args == nil {
		tb.Fatal("Dockerfile: no `RUN go build` line in the build stage")
	}
	return b
}

// dockerLines joins continuation lines and drops comments.
func dockerLines(text string) []string {
	var out []string
	var cur strings.Builder
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// shellWords splits a command line the way sh does for the quoting the
// Dockerfile uses: whitespace, and double-quoted words.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, os.ErrInvalid
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	lines := dockerLines(text)
	has := func(re string) bool {
		rx := regexp.MustCompile(re)
		return slices.ContainsFunc(lines, rx.MatchString)
	}
	for _, c := range []struct{ what, re string }{
		{"a build stage", `^FROM \S+ AS build$`},
		{"a distroless or alpine runtime", `^FROM (gcr\.io/distroless/static\S*:nonroot|alpine\S*)$`},
		{"static build", `^ENV CGO_ENABLED=0$`},
		{"a non-root user", `^USER (65532|nonroot)`},
		{"the data volume", `^VOLUME \["/data"\]$`},
		{"the API port", `^EXPOSE 8480$`},
		{"a self health check", `^HEALTHCHECK .*CMD \["/usr/local/bin/meterd", "health"\]$`},
		{"OCI labels", `^LABEL org\.opencontainers\.image\.title="meterd" .*org\.opencontainers\.image\.version="\$\{VERSION\}"`},
		{"serve by default", `^CMD \["serve"\]$`},
	} {
		if !has(c.re) {
			t.Errorf("Dockerfile lacks %s (%s)", c.what, c.re)
		}
	}
	b := parseDockerBuild(t, text, "v1.2.3")
	want := []string{"-trimpath", "-ldflags", "-s -w -X main.version=v1.2.3", "-o", "/out/meterd", "./cmd/meterd"}
	if !slices.Equal(b.args, want) {
		t.Errorf("go build %q, want %q", b.args, want)
	}
}

// TestDockerBinary builds meterd exactly as the Dockerfile does and checks
// the result: static, stamped with its version, free of build paths, and
// able to serve as its own health check.
func TestDockerBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds meterd from scratch with the release flags; skipped in -short mode")
	}
	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	const version = "v0.0.0-dockertest"
	b := parseDockerBuild(t, string(raw), version)
	out := filepath.Join(t.TempDir(), "meterd")
	args := slices.Clone(b.args)
	i := slices.Index(args, "-o")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("go build %q has no -o", args)
	}
	args[i+1] = out
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", append([]string{"build"}, args...)...)
	build.Dir = root
	build.Env = append(os.Environ(), b.env...)
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %q: %v\n%s", args, err, msg)
	}

	t.Run("static", func(t *testing.T) {
		f, err := elf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("program header %v: the binary is dynamically linked", p.Type)
			}
		}
		if f.Section(".dynamic") != nil || f.Section(".interp") != nil {
			t.Error("the binary has a dynamic section")
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("the binary needs %v", libs)
		}
		if f.Section(".symtab") != nil {
			t.Error("the binary has a symbol table: -s did not apply")
		}
	})
	t.Run("trimpath", func(t *testing.T) {
		bin, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(bin, []byte(root+"/")) {
			t.Errorf("the binary holds the build directory %s: -trimpath did not apply", root)
		}
	})
	t.Run("version", func(t *testing.T) {
		got, err := exec.CommandContext(ctx, out, "version").CombinedOutput()
		if err != nil || string(got) != "meterd "+version+"\n" {
			t.Fatalf("meterd version: %q, %v", got, err)
		}
	})
	t.Run("health", func(t *testing.T) {
		healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				http.NotFound(w, r)
				return
			}
			w.Write([]byte(`{"status":"ok"}`))
		}))
		defer healthy.Close()
		sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}))
		defer sick.Close()
		closed := freeAddr(t)
		for _, c := range []struct {
			name string
			args []string
			env  string
			ok   bool
		}{
			{"healthy", []string{"--url", healthy.URL}, "", true},
			{"healthz URL", []string{"--url", healthy.URL + "/healthz"}, "", true},
			{"from METER_LISTEN", nil, "METER_LISTEN=" + strings.TrimPrefix(healthy.URL, "http://"), true},
			{"503", []string{"--url", sick.URL}, "", false},
			{"nobody listening", []string{"--url", "http://" + closed, "--timeout", "2s"}, "", false},
		} {
			cmd := exec.CommandContext(ctx, out, append([]string{"health"}, c.args...)...)
			cmd.Env = os.Environ()
			if c.env != "" {
				cmd.Env = append(cmd.Env, c.env)
			}
			msg, err := cmd.CombinedOutput()
			if (err == nil) != c.ok {
				t.Errorf("%s: meterd health %q: %v\n%s", c.name, c.args, err, msg)
			}
			if !c.ok && cmd.ProcessState.ExitCode() != 1 {
				t.Errorf("%s: exit code %d, want 1", c.name, cmd.ProcessState.ExitCode())
			}
		}
	})
}
