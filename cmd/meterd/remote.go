package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meterd/meterd/client"
)

// The admin CLI (accounts, keys, usage) talks to a running meterd with
// the client package; these are its shared flags, output and exit codes.

const exitCodesHelp = `meterd exit codes (for scripts):

  0  success (for -h and 'meterd help' too)
  1  failure: the operation failed (verify found problems, a charge
     failed, meterd answered an unexpected error, ...)
  2  usage: unknown command, bad flag or missing argument
  3  not found: no such account or key (HTTP 404)
  4  not authorized: missing or wrong admin token (HTTP 401/403)
  5  unavailable: meterd unreachable, or it answered 5xx (retry later)
  6  conflict: the account exists already, or is deleted (HTTP 409)
`

// Exit codes; see exitCodesHelp.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitUnauthority = 4
	exitUnavailable = 5
	exitConflict    = 6
)

// exitCode maps run's error to the process exit code.
func exitCode(err error) int {
	var ce *client.Error
	var ue *unreachableError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.As(err, &ue):
		return exitUnavailable
	case errors.As(err, &ce):
		switch {
		case ce.Status == http.StatusNotFound:
			return exitNotFound
		case ce.Status == http.StatusUnauthorized || ce.Status == http.StatusForbidden:
			return exitUnauthority
		case ce.Status == http.StatusConflict:
			return exitConflict
		case ce.Status >= 500:
			return exitUnavailable
		}
	}
	return exitFailure
}

// unreachableError is a request that never got an answer from meterd.
type unreachableError struct {
	server string
	err    error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach meterd at %s (set --server or METER_SERVER): %v", e.server, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// remote holds the flags every admin CLI command shares.
type remote struct {
	server     string
	adminToken string
	dataDir    string
	asJSON     bool
	timeout    time.Duration
}

func (r *remote) bind(fs *flag.FlagSet) {
	fs.StringVar(&r.server, "server", env("METER_SERVER", healthURL(env("METER_LISTEN", "127.0.0.1:8480"))),
		"base URL of the running meterd (env METER_SERVER; default from METER_LISTEN)")
	fs.StringVar(&r.adminToken, "admin-token", env("METER_ADMIN_TOKEN", ""),
		"admin token (env METER_ADMIN_TOKEN or METER_ADMIN_TOKEN_FILE; default: read from --data-dir's admin.token)")
	fs.StringVar(&r.dataDir, "data-dir", env("METER_DATA_DIR", "./data"),
		"data directory whose admin.token is used when no token is given (env METER_DATA_DIR)")
	fs.BoolVar(&r.asJSON, "json", false, "print JSON instead of a table")
	fs.DurationVar(&r.timeout, "timeout", 30*time.Second, "give up after this long, retries included")
}

// client builds the API client, finding the admin token.
func (r *remote) client() (*client.Client, error) {
	tok := r.adminToken
	if tok == "" {
		path := filepath.Join(r.dataDir, adminTokenFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("no admin token: pass --admin-token, set METER_ADMIN_TOKEN, or point --data-dir at the server's data directory (%v)", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	return client.New(r.server, client.WithAdminToken(tok))
}

// call runs fn with the timeout and turns a transport failure into an
// unreachableError (exit code 5).
func (r *remote) call(ctx context.Context, fn func(ctx context.Context, c *client.Client) error) error {
	c, err := r.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err = fn(ctx, c)
	var ue *url.Error
	if errors.As(err, &ue) {
		return &unreachableError{server: r.server, err: err}
	}
	return err
}

// remoteCommand is the shape of nearly every admin CLI command: the shared
// flags and its own, a fixed list of positional arguments, one call
// through the client, one answer printed as a table or JSON. Declaring a
// command as this value keeps parsing, checks and exit codes the same
// for all of them; a command only says what differs.
type remoteCommand[T any] struct {
	name     string   // "meterd accounts get"
	synopsis string   // what the usage line shows after the name: "ID --yes"
	help     string   // when set, the usage text above the flags, instead of the synopsis line
	args     []string // names of the positional arguments, all required
	// flags binds the command's own flags.
	flags func(fs *flag.FlagSet)
	// check refuses bad input before any request is made; it may also
	// derive from the flags what call sends.
	check func(fs *flag.FlagSet, pos []string) error
	call  func(ctx context.Context, c *client.Client, pos []string) (T, error)
	print func(stdout, stderr io.Writer, out T, asJSON bool) error
}

// byID is a command whose one argument (named arg in its usage, "ID")
// is what call takes, and whose answer print shows.
func byID[T any](name, arg string, call func(*client.Client, context.Context, string) (T, error),
	print func(stdout, stderr io.Writer, out T, asJSON bool) error) remoteCommand[T] {
	return remoteCommand[T]{name: name, synopsis: arg, args: []string{arg},
		call: func(ctx context.Context, c *client.Client, pos []string) (T, error) {
			return call(c, ctx, pos[0])
		},
		print: print,
	}
}

// run parses, makes the one call through remote.call (so the timeout and
// the unreachable exit code apply) and prints the answer.
func (cmd remoteCommand[T]) run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	r, pos, err := cmd.parse(args, stdout, stderr)
	if err != nil {
		return err
	}
	var out T
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		out, err = cmd.call(ctx, c, pos)
		return err
	})
	if err != nil {
		return err
	}
	return cmd.print(stdout, stderr, out, r.asJSON)
}

// parse reads the flags and positional arguments and runs check.
func (cmd remoteCommand[T]) parse(args []string, stdout, stderr io.Writer) (*remote, []string, error) {
	fs := newFlagSet(cmd.name, cmd.synopsis)
	if cmd.help != "" {
		fs.Usage = func() { fmt.Fprint(fs.Output(), cmd.help); fs.PrintDefaults() }
	}
	r := &remote{}
	r.bind(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err == nil {
		err = wantArgs(fs, pos, cmd.args...)
	}
	if err == nil && cmd.check != nil {
		err = cmd.check(fs, pos)
	}
	return r, pos, err
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows under a header, columns aligned.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// tableOf writes one row per item under a header.
func tableOf[T any](w io.Writer, header string, items []T, row func(T) []string) error {
	rows := make([][]string, 0, len(items))
	for _, it := range items {
		rows = append(rows, row(it))
	}
	return table(w, header, rows)
}

// printRows prints a list as JSON, where no items is [] rather than
// null so that scripts can always iterate, or as a table.
func printRows[T any](w io.Writer, items []T, asJSON bool, header string, row func(T) []string) error {
	if asJSON {
		if items == nil {
			items = []T{}
		}
		return printJSON(w, items)
	}
	return tableOf(w, header, items, row)
}

// idDone is the answer of a call the API answers with 204 (keys revoke,
// webhooks delete): the CLI says itself what it did to which id.
type idDone struct{ id, verb string }

// printIDDone prints "revoked ID", or {"id": ID, "revoked": true}.
func printIDDone(stdout, _ io.Writer, d idDone, asJSON bool) error {
	if asJSON {
		return printJSON(stdout, map[string]any{"id": d.id, d.verb: true})
	}
	fmt.Fprintf(stdout, "%s %s\n", d.verb, d.id)
	return nil
}

// parseArgs parses flags that may come before, between or after the
// positional arguments (`meterd accounts get ID --json`) and returns the
// positional ones.
func parseArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args, stdout, stderr); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(fs *flag.FlagSet, pos []string, names ...string) error {
	if len(pos) == len(names) {
		return nil
	}
	return fmt.Errorf("%s: want %s, got %d arguments %q%w", strings.TrimPrefix(fs.Name(), "meterd "),
		strings.Join(names, " "), len(pos), pos, usageMark)
}

// usageMark makes an error exit with the usage code (2) while its message
// is still printed.
var usageMark = usageError{}

type usageError struct{}

func (usageError) Error() string { return "" }
func (usageError) Is(target error) bool {
	return target == errUsage
}

// verbs dispatches `meterd NOUN VERB ...`.
func verbs(ctx context.Context, noun, help string, table map[string]func(context.Context, []string, io.Writer, io.Writer) error,
	args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, help)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, help)
		return errHelp
	}
	fn, ok := table[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "meterd %s: unknown command %q\n\n%s", noun, args[0], help)
		return errUsage
	}
	return fn(ctx, args[1:], stdout, stderr)
}

func timeText(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func int64Text(p *int64) string {
	if p == nil {
		return "unlimited"
	}
	return fmt.Sprint(*p)
}

// newFlagSet returns a command's flag set whose usage shows its
// synopsis: the name, then args.
func newFlagSet(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nFlags:\n", strings.Join(strings.Fields(name+" "+args+" [flags]"), " "))
		fs.PrintDefaults()
	}
	return fs
}
