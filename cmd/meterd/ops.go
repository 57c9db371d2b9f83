package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/meterd/meterd/ledger"
)

// The operator's subcommands: verify and restore work on a stopped
// meterd's data directory; health asks a running one.

// runVerify is `meterd verify`: it checks the ledger file offline and
// prints the JSON report on stdout; problems make it fail (exit code 1).
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd verify", "[--data-dir DIR]")
	dataDir := fs.String("data-dir", env("METER_DATA_DIR", "./data"), "data directory holding meter.db (env METER_DATA_DIR)")
	if err := parseOpsFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	path := filepath.Join(*dataDir, ledger.FileName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("verify: no ledger in %s (%s does not exist); check --data-dir", *dataDir, ledger.FileName)
	}
	rep, err := ledger.VerifyFile(ctx, path)
	if errors.Is(err, ledger.ErrInUse) {
		return fmt.Errorf("%w: meterd is running on %s; ask it with GET /api/admin/verify", err, *dataDir)
	}
	if err != nil {
		return err
	}
	if err := writeReport(stdout, rep); err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("verify: %d problems found", len(rep.Problems)+rep.MoreProblems)
	}
	return nil
}

// runRestore is `meterd restore`: it installs a backup (from GET
// /api/admin/backup) as the data directory's ledger, then verifies it.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd restore", "--from FILE [--data-dir DIR] [--force]")
	from := fs.String("from", "", "backup file to restore (required)")
	dataDir := fs.String("data-dir", env("METER_DATA_DIR", "./data"), "data directory to restore into (env METER_DATA_DIR)")
	force := fs.Bool("force", false, "replace an existing ledger (it is kept as meter.db.pre-restore-<time>)")
	if err := parseOpsFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if *from == "" {
		return fmt.Errorf("restore: --from FILE is required%w", usageMark)
	}
	err := ledger.Restore(ctx, *from, *dataDir, restoreOptions(*force))
	if errors.Is(err, ledger.ErrLedgerExists) {
		return fmt.Errorf("%w; pass --force to replace it (the current one is kept as %s.pre-restore-<time>)", err, ledger.FileName)
	}
	if err != nil {
		return err
	}
	path := filepath.Join(*dataDir, ledger.FileName)
	epoch, err := ledger.FileEpoch(path)
	if err != nil {
		return fmt.Errorf("restored %s, but cannot read it back: %w", path, err)
	}
	rep, err := ledger.VerifyFile(ctx, path)
	if err != nil {
		return fmt.Errorf("restored %s, but cannot verify it: %w", path, err)
	}
	if !rep.OK {
		writeReport(stdout, rep)
		return fmt.Errorf("restored %s, but verify found %d problems", path, len(rep.Problems)+rep.MoreProblems)
	}
	fmt.Fprintf(stdout, "restored %s into %s: %d accounts, %d events (sequences %d..%d); verify ok; epoch %d\n",
		*from, path, rep.Accounts, rep.Events, rep.FirstSeq, rep.LastSeq, epoch)
	return nil
}

// restoreKillEnv names a restore step (ledger.RestoreStaged, RestoreKept,
// RestoreInstalled) after which `meterd restore` SIGKILLs itself: the
// crash tests use it to stop exactly between two steps. Never set it in
// production.
const restoreKillEnv = "METER_TEST_RESTORE_KILL_AFTER"

func restoreOptions(force bool) ledger.RestoreOptions {
	opts := ledger.RestoreOptions{Force: force}
	if step := os.Getenv(restoreKillEnv); step != "" {
		opts.StepFn = func(s string) {
			if s == step {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	return opts
}

// runHealth is `meterd health`, the container's HEALTHCHECK: it succeeds
// if /healthz answers 200 within the timeout.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd health", "[--url URL]")
	url := fs.String("url", healthURL(env("METER_LISTEN", "127.0.0.1:8480")),
		"meterd's base URL, or its /healthz URL (default: from METER_LISTEN)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := parseOpsFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	target := strings.TrimRight(*url, "/")
	if !strings.HasSuffix(target, "/healthz") {
		target += "/healthz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	// No proxy: the check is about this host, whatever HTTP_PROXY says.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %s", target, resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// healthURL turns a listen address into the URL to check it on: a
// wildcard host (":8480", "0.0.0.0:8480", "[::]:8480") becomes loopback.
func healthURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://127.0.0.1:8480"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func parseOpsFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments: %v%w", fs.Name(), fs.Args(), usageMark)
	}
	return nil
}

func writeReport(w io.Writer, rep ledger.VerifyReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
