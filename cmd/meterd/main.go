// Command meterd is the usage-metering appliance: one binary, one bbolt
// file. `meterd serve` runs it; see `meterd help` for the rest.
package main

import (
	"context"
	"errors"
	"flag"
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
	// errUsage and errHelp themselves have been explained already.
	if err != nil && err != errUsage && err != errHelp {
		fmt.Fprintln(os.Stderr, "meterd:", err)
	}
	os.Exit(exitCode(err))
}

var (
	// errUsage: bad flags or arguments; what is wrong has been printed.
	errUsage = errors.New("usage")
	// errHelp: -h or --help was asked for and the help printed (exit 0).
	errHelp = errors.New("help")
)

// command is one subcommand. run gets the arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists the subcommands in the order `meterd help` shows them.
func commands() []command {
	return []command{
		{"serve", "run the metering server", runServe},
		{"accounts", "list, create, get, update, suspend or delete accounts (of a running meterd)", runAccounts},
		{"keys", "create, list or revoke API keys (of a running meterd)", runKeys},
		{"webhooks", "manage webhook endpoints, see deliveries, replay dead ones (of a running meterd)", runWebhooks},
		{"usage", "show an account's usage: current period and daily history", runUsage},
		{"migrate", "apply the Postgres schema (idempotent)", runMigrate},
		{"export", "export the ledger's backlog to Postgres once and exit", runExport},
		{"bill", "bill overage to Stripe now, from a stopped meterd's ledger", runBill},
		{"verify", "check a stopped meterd's ledger; JSON report, exit 1 on problems", runVerify},
		{"restore", "install a backup into a data directory", runRestore},
		{"health", "exit 0 if meterd's /healthz answers 200", runHealth},
		{"cluster", "cluster operations: release NODE settles a dead node's quota leases", runCluster},
		{"version", "print the version", runVersion},
		{"help", "show help for a command: meterd help COMMAND", nil},
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, "meterd — self-hosted usage metering\n\nUsage:\n  meterd COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'meterd help COMMAND' or 'meterd COMMAND -h' for a command's flags.
'meterd --version' prints the version. Exit codes: see 'meterd help exit-codes'.
`)
}

// run dispatches a subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := loadSecretFiles(); err != nil {
		return err
	}
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return nil
	case "-v", "-version", "--version":
		return runVersion(ctx, nil, stdout, stderr)
	case "help":
		return runHelp(ctx, args[1:], stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] && c.run != nil {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "meterd: unknown command %q\n\n", args[0])
	usage(stderr)
	return errUsage
}

// runHelp is `meterd help [COMMAND]`: the command's own usage and flags,
// on stdout, exit 0.
func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stdout)
		return nil
	}
	if args[0] == "exit-codes" {
		fmt.Fprint(stdout, exitCodesHelp)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] && c.run != nil {
			err := c.run(ctx, append(args[1:len(args):len(args)], "-h"), stdout, stdout)
			if errors.Is(err, errHelp) {
				return nil
			}
			return err
		}
	}
	fmt.Fprintf(stderr, "meterd help: unknown command %q\n\n", args[0])
	usage(stderr)
	return errUsage
}

func runVersion(_ context.Context, args []string, stdout, _ io.Writer) error {
	if len(args) > 0 && args[0] != "-h" && args[0] != "--help" {
		return fmt.Errorf("version: unexpected arguments: %v", args)
	}
	fmt.Fprintln(stdout, "meterd", version)
	return nil
}

// parseFlags parses a subcommand's flags. -h/--help prints the usage on
// stdout and returns errHelp (exit 0); a bad flag prints the problem and
// the usage on stderr and returns errUsage (exit 2). fs.Usage, when set,
// prints the command's synopsis before the flags.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	synopsis := fs.Usage
	printUsage := func(w io.Writer) {
		fs.SetOutput(w)
		if synopsis != nil {
			synopsis()
		} else {
			fmt.Fprintf(w, "Usage: %s [flags]\n\nFlags:\n", fs.Name())
			fs.PrintDefaults()
		}
	}
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return errHelp
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		printUsage(stderr)
		return errUsage
	}
	fs.SetOutput(stderr)
	return nil
}
