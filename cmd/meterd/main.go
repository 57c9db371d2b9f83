// Command meterd is the usage-metering appliance: one binary, one bbolt
// file. `meterd serve` runs it; see `meterd help` for the rest.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, errUsage) {
		fmt.Fprintln(os.Stderr, "meterd:", err)
	}
	if err != nil {
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `meterd — self-hosted usage metering

Usage:
  meterd serve [flags]     run the metering server (see meterd serve -h)
  meterd migrate --database-url URL
                           apply the Postgres schema (idempotent)
  meterd export --once --database-url URL
                           export the ledger's backlog to Postgres and exit
  meterd bill [--dry-run] [--period YYYY-MM]
                           bill overage to Stripe now (see meterd bill -h)
  meterd version           print the version
  meterd verify [flags]    check a stopped meterd's ledger; JSON report, exit 1 on problems
  meterd restore [flags]   install a backup: --from FILE --data-dir DIR [--force]
  meterd health [flags]    exit 0 if meterd's /healthz answers 200 (--url URL)
  meterd cluster release NODE --database-url URL
                           settle a dead cluster node's quota leases
`

// run dispatches a subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		m := NewMain(stdout, stderr)
		if err := m.ParseFlags(args[1:]); err != nil {
			return err
		}
		return m.Serve(ctx)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "export":
		return runExport(ctx, args[1:], stdout, stderr)
	case "bill":
		return runBill(ctx, args[1:], stdout, stderr)
	case "verify":
		return runVerify(ctx, args[1:], stdout, stderr)
	case "restore":
		return runRestore(ctx, args[1:], stdout, stderr)
	case "health":
		return runHealth(ctx, args[1:], stdout, stderr)
	case "cluster":
		return runCluster(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "meterd", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "meterd: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
