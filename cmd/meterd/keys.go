package main

import (
	"context"
	"fmt"
	"io"

	"github.com/meterd/meterd/client"
)

const keysHelp = `Usage: meterd keys COMMAND ARG [flags]

Manages API keys on a running meterd through its admin API.

Commands:
  create ACCOUNT    issue a key; its plaintext is printed this once only
  list ACCOUNT      list an account's keys (never their plaintext)
  revoke KEY_ID     revoke a key at once

Every command takes --server, --admin-token, --data-dir, --json and
--timeout; run 'meterd keys COMMAND -h' for its flags.
Exit codes: 'meterd help exit-codes'.
`

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return verbs(ctx, "keys", keysHelp, map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"create": keysCreate, "list": keysList, "revoke": keysRevoke,
	}, args, stdout, stderr)
}

func keysCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd keys create", "ACCOUNT")
	var r remote
	r.bind(fs)
	quiet := fs.Bool("quiet", false, "print only the key's plaintext, for KEY=$(meterd keys create ACCOUNT --quiet)")
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ACCOUNT"); err != nil {
		return err
	}
	var k client.IssuedKey
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		k, err = c.IssueKey(ctx, pos[0])
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case r.asJSON:
		return printJSON(stdout, k)
	case *quiet:
		_, err := fmt.Fprintln(stdout, k.Key)
		return err
	}
	fmt.Fprintln(stderr, "the key is shown this once: store it now")
	return table(stdout, "KEY ID\tACCOUNT\tKEY", [][]string{{k.ID, k.AccountID, k.Key}})
}

func keysList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd keys list", "ACCOUNT")
	var r remote
	r.bind(fs)
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ACCOUNT"); err != nil {
		return err
	}
	var a client.Account
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		a, err = c.GetAccount(ctx, pos[0])
		return err
	})
	if err != nil {
		return err
	}
	if r.asJSON {
		return printJSON(stdout, a.Keys)
	}
	return keyTable(stdout, a.Keys)
}

func keysRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd keys revoke", "KEY_ID")
	var r remote
	r.bind(fs)
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "KEY_ID"); err != nil {
		return err
	}
	err = r.call(ctx, func(ctx context.Context, c *client.Client) error { return c.RevokeKey(ctx, pos[0]) })
	if err != nil {
		return err
	}
	if r.asJSON {
		return printJSON(stdout, map[string]any{"id": pos[0], "revoked": true})
	}
	fmt.Fprintf(stdout, "revoked %s\n", pos[0])
	return nil
}

func keyTable(w io.Writer, keys []client.Key) error {
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, []string{k.ID, k.Prefix, timeText(&k.CreatedAt), timeText(k.RevokedAt)})
	}
	return table(w, "KEY ID\tPREFIX\tCREATED\tREVOKED", rows)
}
