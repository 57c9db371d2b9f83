package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/meterd/meterd/client"
)

const accountsHelp = `Usage: meterd accounts COMMAND [ARGS] [flags]

Manages the accounts of a running meterd through its admin API.

Commands:
  list                    list accounts (--status active|suspended|deleted)
  create --name NAME      create an account (--id, --email, --plan, ...)
  get ID                  show an account and its keys
  update ID               change --name, --email, --plan, --stripe-customer,
                          --monthly-price-cents
  suspend ID              refuse the account's calls (403 account_suspended)
  resume ID               lift a suspension
  delete ID --yes         revoke every key and refuse the account's calls;
                          its usage history and billing are kept

Every command takes --server, --admin-token, --data-dir, --json and
--timeout; run 'meterd accounts COMMAND -h' for its flags.
Exit codes: 'meterd help exit-codes'.
`

func runAccounts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return verbs(ctx, "accounts", accountsHelp, map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"list": accountsList, "create": accountsCreate, "get": accountsGet, "update": accountsUpdate,
		"suspend": accountsLifecycle("suspend"), "resume": accountsLifecycle("resume"), "delete": accountsDelete,
	}, args, stdout, stderr)
}

func accountsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var status, cursor string
	var limit int
	return remoteCommand[client.AccountPage]{name: "meterd accounts list",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&status, "status", "", "only accounts with this status: active, suspended or deleted")
			fs.IntVar(&limit, "limit", 0, "one page of at most this many (with --cursor); 0 = every account")
			fs.StringVar(&cursor, "cursor", "", "the next_cursor of the previous page")
		},
		call: func(ctx context.Context, c *client.Client, _ []string) (page client.AccountPage, err error) {
			if limit == 0 && cursor == "" {
				page.Accounts, err = c.AllAccounts(ctx, status)
				return page, err
			}
			return c.ListAccounts(ctx, client.ListOptions{Cursor: cursor, Limit: limit, Status: status})
		},
		print: printAccountPage,
	}.run(ctx, args, stdout, stderr)
}

// printAccountPage shows a page of accounts; the cursor of the next page
// goes to stderr so that the table on stdout stays a table.
func printAccountPage(stdout, stderr io.Writer, page client.AccountPage, asJSON bool) error {
	if page.Accounts == nil {
		page.Accounts = []client.Account{}
	}
	if asJSON {
		return printJSON(stdout, page)
	}
	if page.NextCursor != "" {
		fmt.Fprintf(stderr, "more: --cursor %s\n", page.NextCursor)
	}
	return accountTable(stdout, page.Accounts)
}

func accountTable(w io.Writer, accts []client.Account) error {
	return tableOf(w, "ID\tPLAN\tSTATUS\tKEYS\tNAME\tEMAIL\tCREATED", accts, func(a client.Account) []string {
		return []string{a.ID, a.Plan, a.Status(), fmt.Sprint(activeKeys(a)), a.Name, a.Email, timeText(&a.CreatedAt)}
	})
}

func activeKeys(a client.Account) int {
	n := 0
	for _, k := range a.Keys {
		if k.RevokedAt == nil {
			n++
		}
	}
	return n
}

// accountFlags are the fields create and update set.
type accountFlags struct {
	name, email, plan, stripe string
	price                     int64
}

func (a *accountFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&a.name, "name", "", "the account's display name")
	fs.StringVar(&a.email, "email", "", "contact email")
	fs.StringVar(&a.plan, "plan", "", "plan name (free, pro, enterprise, or one from the plans file)")
	fs.StringVar(&a.stripe, "stripe-customer", "", "Stripe customer id (cus_...) that overage is billed to")
	fs.Int64Var(&a.price, "monthly-price-cents", 0, "price per month in cents, overriding the plan's (enterprise)")
}

func accountsCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var a accountFlags
	var id string
	return remoteCommand[client.Account]{name: "meterd accounts create", synopsis: "--name NAME",
		flags: func(fs *flag.FlagSet) {
			a.bind(fs)
			fs.StringVar(&id, "id", "", "account id (default: generated, acct_...)")
		},
		check: func(*flag.FlagSet, []string) error {
			if a.name == "" {
				return fmt.Errorf("accounts create: --name is required%w", usageMark)
			}
			return nil
		},
		call: func(ctx context.Context, c *client.Client, _ []string) (client.Account, error) {
			return c.CreateAccount(ctx, client.NewAccount{ID: id, Name: a.name, Email: a.email, Plan: a.plan,
				StripeCustomerID: a.stripe, MonthlyPriceCents: a.price})
		},
		print: printAccount,
	}.run(ctx, args, stdout, stderr)
}

func accountsGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return byID("meterd accounts get", "ID", (*client.Client).GetAccount, printAccount).run(ctx, args, stdout, stderr)
}

func accountsUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var a accountFlags
	var p client.AccountPatch
	return remoteCommand[client.Account]{name: "meterd accounts update", synopsis: "ID", args: []string{"ID"},
		flags: a.bind,
		check: func(fs *flag.FlagSet, _ []string) error {
			p = a.patch(fs)
			if p == (client.AccountPatch{}) {
				return fmt.Errorf("accounts update: nothing to change: give --name, --email, --plan, --stripe-customer or --monthly-price-cents%w", usageMark)
			}
			return nil
		},
		call: func(ctx context.Context, c *client.Client, pos []string) (client.Account, error) {
			return c.UpdateAccount(ctx, pos[0], p)
		},
		print: printAccount,
	}.run(ctx, args, stdout, stderr)
}

// patch holds the fields whose flags were given, so that update changes
// only what the admin named.
func (a *accountFlags) patch(fs *flag.FlagSet) client.AccountPatch {
	var p client.AccountPatch
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "name":
			p.Name = &a.name
		case "email":
			p.Email = &a.email
		case "plan":
			p.Plan = &a.plan
		case "stripe-customer":
			p.StripeCustomerID = &a.stripe
		case "monthly-price-cents":
			p.MonthlyPriceCents = &a.price
		}
	})
	return p
}

// accountsLifecycle is suspend or resume.
func accountsLifecycle(verb string) func(context.Context, []string, io.Writer, io.Writer) error {
	call := (*client.Client).ResumeAccount
	if verb == "suspend" {
		call = (*client.Client).SuspendAccount
	}
	return byID("meterd accounts "+verb, "ID", call, printAccount).run
}

func accountsDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var yes bool
	return remoteCommand[client.Account]{name: "meterd accounts delete", synopsis: "ID --yes", args: []string{"ID"},
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&yes, "yes", false, "confirm: revoke every key of the account and refuse its calls for good")
		},
		check: func(_ *flag.FlagSet, pos []string) error {
			if !yes {
				return fmt.Errorf("accounts delete: pass --yes to delete %s (its keys are revoked and it cannot be undone; usage history and billing are kept)%w", pos[0], usageMark)
			}
			return nil
		},
		call: func(ctx context.Context, c *client.Client, pos []string) (client.Account, error) {
			return c.DeleteAccount(ctx, pos[0])
		},
		print: printAccount,
	}.run(ctx, args, stdout, stderr)
}

// printAccount shows one account: JSON, or its fields and a key table.
func printAccount(w, _ io.Writer, a client.Account, asJSON bool) error {
	if asJSON {
		return printJSON(w, a)
	}
	price := "plan's"
	if a.MonthlyPriceCents > 0 {
		price = money(a.MonthlyPriceCents)
	}
	rows := [][]string{{"id", a.ID}, {"name", a.Name}, {"email", a.Email}, {"plan", a.Plan},
		{"status", a.Status()}, {"stripe customer", a.StripeCustomerID}, {"monthly price", price},
		{"created", timeText(&a.CreatedAt)}}
	if a.SuspendedAt != nil {
		rows = append(rows, []string{"suspended", timeText(a.SuspendedAt)})
	}
	if a.DeletedAt != nil {
		rows = append(rows, []string{"deleted", timeText(a.DeletedAt)})
	}
	tw := [][]string{}
	for _, r := range rows {
		tw = append(tw, []string{r[0] + ":", r[1]})
	}
	if err := table(w, "ACCOUNT\t", tw); err != nil {
		return err
	}
	if len(a.Keys) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return keyTable(w, a.Keys)
}
