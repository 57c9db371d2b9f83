package main

import (
	"context"
	"flag"
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
	var quiet bool
	return remoteCommand[client.IssuedKey]{name: "meterd keys create", synopsis: "ACCOUNT", args: []string{"ACCOUNT"},
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&quiet, "quiet", false, "print only the key's plaintext, for KEY=$(meterd keys create ACCOUNT --quiet)")
		},
		call: func(ctx context.Context, c *client.Client, pos []string) (client.IssuedKey, error) {
			return c.IssueKey(ctx, pos[0])
		},
		print: func(stdout, stderr io.Writer, k client.IssuedKey, asJSON bool) error {
			switch {
			case asJSON:
				return printJSON(stdout, k)
			case quiet:
				_, err := fmt.Fprintln(stdout, k.Key)
				return err
			}
			fmt.Fprintln(stderr, "the key is shown this once: store it now")
			return table(stdout, "KEY ID\tACCOUNT\tKEY", [][]string{{k.ID, k.AccountID, k.Key}})
		},
	}.run(ctx, args, stdout, stderr)
}

func keysList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return byID("meterd keys list", "ACCOUNT", (*client.Client).GetAccount, printAccountKeys).run(ctx, args, stdout, stderr)
}

// printAccountKeys shows only the keys of the account it is given.
func printAccountKeys(stdout, _ io.Writer, a client.Account, asJSON bool) error {
	if asJSON {
		return printJSON(stdout, a.Keys)
	}
	return keyTable(stdout, a.Keys)
}

func keysRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return remoteCommand[idDone]{name: "meterd keys revoke", synopsis: "KEY_ID", args: []string{"KEY_ID"},
		call: func(ctx context.Context, c *client.Client, pos []string) (idDone, error) {
			return idDone{id: pos[0], verb: "revoked"}, c.RevokeKey(ctx, pos[0])
		},
		print: printIDDone,
	}.run(ctx, args, stdout, stderr)
}

func keyTable(w io.Writer, keys []client.Key) error {
	return tableOf(w, "KEY ID\tPREFIX\tCREATED\tREVOKED", keys, func(k client.Key) []string {
		return []string{k.ID, k.Prefix, timeText(&k.CreatedAt), timeText(k.RevokedAt)}
	})
}
