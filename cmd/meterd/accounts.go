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
	fs := newFlagSet("meterd accounts list", "")
	var r remote
	r.bind(fs)
	status := fs.String("status", "", "only accounts with this status: active, suspended or deleted")
	limit := fs.Int("limit", 0, "one page of at most this many (with --cursor); 0 = every account")
	cursor := fs.String("cursor", "", "the next_cursor of the previous page")
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	var page client.AccountPage
	err = r.call(ctx, func(ctx context.Context, c *client.Client) error {
		if *limit == 0 && *cursor == "" {
			page.Accounts, err = c.AllAccounts(ctx, *status)
			return err
		}
		page, err = c.ListAccounts(ctx, client.ListOptions{Cursor: *cursor, Limit: *limit, Status: *status})
		return err
	})
	if err != nil {
		return err
	}
	if page.Accounts == nil {
		page.Accounts = []client.Account{}
	}
	if r.asJSON {
		return printJSON(stdout, page)
	}
	if page.NextCursor != "" {
		fmt.Fprintf(stderr, "more: --cursor %s\n", page.NextCursor)
	}
	return accountTable(stdout, page.Accounts)
}

func accountTable(w io.Writer, accts []client.Account) error {
	rows := make([][]string, 0, len(accts))
	for _, a := range accts {
		active := 0
		for _, k := range a.Keys {
			if k.RevokedAt == nil {
				active++
			}
		}
		rows = append(rows, []string{a.ID, a.Plan, a.Status(), fmt.Sprint(active), a.Name, a.Email,
			timeText(&a.CreatedAt)})
	}
	return table(w, "ID\tPLAN\tSTATUS\tKEYS\tNAME\tEMAIL\tCREATED", rows)
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
	fs := newFlagSet("meterd accounts create", "--name NAME")
	var r remote
	r.bind(fs)
	var a accountFlags
	a.bind(fs)
	id := fs.String("id", "", "account id (default: generated, acct_...)")
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	if a.name == "" {
		return fmt.Errorf("accounts create: --name is required%w", usageMark)
	}
	var out client.Account
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		out, err = c.CreateAccount(ctx, client.NewAccount{ID: *id, Name: a.name, Email: a.email, Plan: a.plan,
			StripeCustomerID: a.stripe, MonthlyPriceCents: a.price})
		return err
	})
	if err != nil {
		return err
	}
	return printAccount(stdout, out, r.asJSON)
}

func accountsGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd accounts get", "ID")
	var r remote
	r.bind(fs)
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ID"); err != nil {
		return err
	}
	var out client.Account
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		out, err = c.GetAccount(ctx, pos[0])
		return err
	})
	if err != nil {
		return err
	}
	return printAccount(stdout, out, r.asJSON)
}

func accountsUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd accounts update", "ID")
	var r remote
	r.bind(fs)
	var a accountFlags
	a.bind(fs)
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ID"); err != nil {
		return err
	}
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
	if p == (client.AccountPatch{}) {
		return fmt.Errorf("accounts update: nothing to change: give --name, --email, --plan, --stripe-customer or --monthly-price-cents%w", usageMark)
	}
	var out client.Account
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		out, err = c.UpdateAccount(ctx, pos[0], p)
		return err
	})
	if err != nil {
		return err
	}
	return printAccount(stdout, out, r.asJSON)
}

// accountsLifecycle is suspend or resume.
func accountsLifecycle(verb string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet("meterd accounts "+verb, "ID")
		var r remote
		r.bind(fs)
		pos, err := parseArgs(fs, args, stdout, stderr)
		if err != nil {
			return err
		}
		if err := wantArgs(fs, pos, "ID"); err != nil {
			return err
		}
		var out client.Account
		err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
			if verb == "suspend" {
				out, err = c.SuspendAccount(ctx, pos[0])
			} else {
				out, err = c.ResumeAccount(ctx, pos[0])
			}
			return err
		})
		if err != nil {
			return err
		}
		return printAccount(stdout, out, r.asJSON)
	}
}

func accountsDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd accounts delete", "ID --yes")
	var r remote
	r.bind(fs)
	yes := fs.Bool("yes", false, "confirm: revoke every key of the account and refuse its calls for good")
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ID"); err != nil {
		return err
	}
	if !*yes {
		return fmt.Errorf("accounts delete: pass --yes to delete %s (its keys are revoked and it cannot be undone; usage history and billing are kept)%w", pos[0], usageMark)
	}
	var out client.Account
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		out, err = c.DeleteAccount(ctx, pos[0])
		return err
	})
	if err != nil {
		return err
	}
	return printAccount(stdout, out, r.asJSON)
}

// printAccount shows one account: JSON, or its fields and a key table.
func printAccount(w io.Writer, a client.Account, asJSON bool) error {
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
