package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/meterd/meterd/client"
)

const accountUsageHelp = `Usage: meterd usage ACCOUNT [--days N] [flags]

Shows an account's usage from a running meterd: the current period
(calls, limit, overage and its cost, denied calls), then one line per UTC
day for the last --days days, oldest first.

Flags:
`

func runUsage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var days int
	return remoteCommand[accountUsage]{name: "meterd usage", help: accountUsageHelp, args: []string{"ACCOUNT"},
		flags: func(fs *flag.FlagSet) { fs.IntVar(&days, "days", 7, "days of history, 1 to 366") },
		check: func(*flag.FlagSet, []string) error {
			if days < 1 || days > 366 {
				return fmt.Errorf("meterd usage: --days must be 1 to 366, not %d%w", days, usageMark)
			}
			return nil
		},
		call: func(ctx context.Context, c *client.Client, pos []string) (out accountUsage, err error) {
			if out.Current, err = c.UsageOf(ctx, pos[0]); err != nil {
				return out, err
			}
			out.History, err = c.HistoryOf(ctx, pos[0], days)
			return out, err
		},
		print: printAccountUsage,
	}.run(ctx, args, stdout, stderr)
}

// accountUsage is what usage shows: the current period, then the days.
type accountUsage struct {
	Current client.Usage `json:"current"`
	History []client.Day `json:"history"`
}

func printAccountUsage(stdout, _ io.Writer, out accountUsage, asJSON bool) error {
	if asJSON {
		return printJSON(stdout, out)
	}
	u := out.Current
	table(stdout, "ACCOUNT\tPLAN\tPERIOD\tCALLS\tLIMIT\tREMAINING\tOVERAGE\tOVERAGE COST\tDENIED", [][]string{{
		u.AccountID, u.Plan, u.PeriodStart[:10] + ".." + u.PeriodEnd[:10], fmt.Sprint(u.APICalls),
		int64Text(u.Limit), int64Text(u.Remaining), fmt.Sprint(u.OverageCalls), money(u.OverageCostCents),
		fmt.Sprint(u.DeniedCalls)}})
	fmt.Fprintln(stdout)
	rows := make([][]string, 0, len(out.History))
	for _, d := range out.History {
		rows = append(rows, []string{d.Date, fmt.Sprint(d.APICalls), fmt.Sprint(d.OverageCalls),
			fmt.Sprint(d.DeniedCalls), fmt.Sprint(d.Errors)})
	}
	return table(stdout, "DATE\tCALLS\tOVERAGE\tDENIED\tERRORS", rows)
}
