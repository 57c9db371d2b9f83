package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/meterd/meterd/client"
)

const webhooksHelp = `Usage: meterd webhooks COMMAND [ARGS] [flags]

Manages the webhook endpoints of a running meterd through its admin API
and shows what was delivered to them.

Commands:
  list                     list endpoints: URL, enabled, event types
  create --url URL         add an endpoint; its signing secret is printed
                           this once only (--events, --description,
                           --secret, --disabled)
  get ID                   show an endpoint
  update ID                change --url, --description, --events,
                           --enabled; --rotate-secret makes a new secret
                           (printed once; the old one stays valid 24h)
  delete ID --yes          remove the endpoint and stop its deliveries
  deliveries ID            the delivery log, newest first: status,
                           attempts, last answer (--status, --limit)
  replay ID --since T      send dead deliveries of notices made since T
                           again (RFC 3339 time or a duration such as 24h;
                           --all: delivered ones too)

--events is a comma-separated list of event types, or "all" (the
default): usage.threshold_reached, usage.limit_reached,
usage.overage_started, billing.charge_created, billing.charge_failed,
billing.period_closed, account.plan_changed.

Every command takes --server, --admin-token, --data-dir, --json and
--timeout; run 'meterd webhooks COMMAND -h' for its flags.
Exit codes: 'meterd help exit-codes' (3 also when webhooks are off).
`

func runWebhooks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return verbs(ctx, "webhooks", webhooksHelp, map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"list": webhooksList, "create": webhooksCreate, "get": webhooksGet, "update": webhooksUpdate,
		"delete": webhooksDelete, "deliveries": webhooksDeliveries, "replay": webhooksReplay,
	}, args, stdout, stderr)
}

func webhooksList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd webhooks list", "")
	var r remote
	r.bind(fs)
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	var ws []client.Webhook
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		ws, err = c.ListWebhooks(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if ws == nil {
		ws = []client.Webhook{}
	}
	if r.asJSON {
		return printJSON(stdout, ws)
	}
	rows := make([][]string, 0, len(ws))
	for _, w := range ws {
		rows = append(rows, []string{w.ID, enabledText(w.Enabled), eventsText(w.EventTypes), w.URL, w.Description})
	}
	return table(stdout, "ID\tENABLED\tEVENTS\tURL\tDESCRIPTION", rows)
}

// webhookFlags are the fields create and update set.
type webhookFlags struct {
	url, description, events, secret string
}

func (w *webhookFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&w.url, "url", "", "the receiver's http(s) URL")
	fs.StringVar(&w.description, "description", "", "what the endpoint is for")
	fs.StringVar(&w.events, "events", "all", "comma-separated event types sent to it, or all")
}

// eventList parses --events: "all" (or empty) is every type.
func eventList(s string) []string {
	if strings.TrimSpace(s) == "all" {
		return []string{}
	}
	out := []string{}
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func webhooksCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd webhooks create", "--url URL")
	var r remote
	r.bind(fs)
	var w webhookFlags
	w.bind(fs)
	fs.StringVar(&w.secret, "secret", "", "signing secret, whsec_ + base64 (default: generated)")
	disabled := fs.Bool("disabled", false, "create it disabled (nothing is sent until it is enabled)")
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	if w.url == "" {
		return fmt.Errorf("webhooks create: --url is required%w", usageMark)
	}
	enabled := !*disabled
	var out client.Webhook
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		out, err = c.CreateWebhook(ctx, client.NewWebhook{URL: w.url, Description: w.description,
			EventTypes: eventList(w.events), Enabled: &enabled, Secret: w.secret})
		return err
	})
	if err != nil {
		return err
	}
	return printWebhook(stdout, stderr, out, r.asJSON)
}

func webhooksGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd webhooks get", "ID")
	var r remote
	r.bind(fs)
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ID"); err != nil {
		return err
	}
	var out client.Webhook
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		out, err = c.GetWebhook(ctx, pos[0])
		return err
	})
	if err != nil {
		return err
	}
	return printWebhook(stdout, stderr, out, r.asJSON)
}

func webhooksUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd webhooks update", "ID")
	var r remote
	r.bind(fs)
	var w webhookFlags
	w.bind(fs)
	enabled := fs.Bool("enabled", true, "--enabled=false stops sending to it (deliveries wait), --enabled=true resumes")
	rotate := fs.Bool("rotate-secret", false, "make a new signing secret (--secret, or generated); the old one stays valid for 24h")
	fs.StringVar(&w.secret, "secret", "", "the new secret, with --rotate-secret")
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ID"); err != nil {
		return err
	}
	var p client.WebhookPatch
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "url":
			p.URL = &w.url
		case "description":
			p.Description = &w.description
		case "events":
			ev := eventList(w.events)
			p.EventTypes = &ev
		case "enabled":
			p.Enabled = enabled
		case "rotate-secret":
			p.RotateSecret = *rotate
		case "secret":
			p.Secret = &w.secret
		}
	})
	if p.Secret != nil && !p.RotateSecret {
		return fmt.Errorf("webhooks update: --secret needs --rotate-secret%w", usageMark)
	}
	if p.URL == nil && p.Description == nil && p.EventTypes == nil && p.Enabled == nil && !p.RotateSecret {
		return fmt.Errorf("webhooks update: nothing to change: give --url, --description, --events, --enabled or --rotate-secret%w", usageMark)
	}
	var out client.Webhook
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		out, err = c.UpdateWebhook(ctx, pos[0], p)
		return err
	})
	if err != nil {
		return err
	}
	return printWebhook(stdout, stderr, out, r.asJSON)
}

func webhooksDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd webhooks delete", "ID --yes")
	var r remote
	r.bind(fs)
	yes := fs.Bool("yes", false, "confirm: remove the endpoint; its pending deliveries are not sent")
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ID"); err != nil {
		return err
	}
	if !*yes {
		return fmt.Errorf("webhooks delete: pass --yes to delete %s (its pending deliveries are dropped)%w", pos[0], usageMark)
	}
	err = r.call(ctx, func(ctx context.Context, c *client.Client) error { return c.DeleteWebhook(ctx, pos[0]) })
	if err != nil {
		return err
	}
	if r.asJSON {
		return printJSON(stdout, map[string]any{"id": pos[0], "deleted": true})
	}
	fmt.Fprintf(stdout, "deleted %s\n", pos[0])
	return nil
}

func webhooksDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd webhooks deliveries", "ID")
	var r remote
	r.bind(fs)
	status := fs.String("status", "", "only deliveries in this state: pending, delivered or dead")
	limit := fs.Int("limit", 100, "at most this many, newest first (1..1000)")
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ID"); err != nil {
		return err
	}
	var ds []client.Delivery
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		ds, err = c.Deliveries(ctx, pos[0], client.DeliveryOptions{Status: *status, Limit: *limit})
		return err
	})
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []client.Delivery{}
	}
	if r.asJSON {
		return printJSON(stdout, ds)
	}
	rows := make([][]string, 0, len(ds))
	for _, d := range ds {
		answer := "-"
		if d.LastStatus != 0 {
			answer = strconv.Itoa(d.LastStatus)
		}
		if d.LastError != "" {
			answer += " " + d.LastError
		}
		rows = append(rows, []string{d.NoticeID, d.EventType, d.AccountID, d.Status, strconv.Itoa(d.Attempts),
			timeText(&d.CreatedAt), timeText(&d.LastAttempt), answer})
	}
	return table(stdout, "NOTICE ID\tEVENT\tACCOUNT\tSTATUS\tATTEMPTS\tCREATED\tLAST ATTEMPT\tLAST ANSWER", rows)
}

func webhooksReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("meterd webhooks replay", "ID --since T")
	var r remote
	r.bind(fs)
	sinceText := fs.String("since", "", "replay notices made at or after this: RFC 3339 time (2026-03-01T00:00:00Z) or a duration ago (24h)")
	all := fs.Bool("all", false, "replay delivered deliveries too, not only dead ones")
	pos, err := parseArgs(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ID"); err != nil {
		return err
	}
	since, err := sinceTime(*sinceText, time.Now())
	if err != nil {
		return fmt.Errorf("webhooks replay: --since: %v%w", err, usageMark)
	}
	var n int
	err = r.call(ctx, func(ctx context.Context, c *client.Client) (err error) {
		n, err = c.ReplayWebhook(ctx, pos[0], since, *all)
		return err
	})
	if err != nil {
		return err
	}
	if r.asJSON {
		return printJSON(stdout, map[string]any{"id": pos[0], "replayed": n})
	}
	fmt.Fprintf(stdout, "replaying %d deliveries to %s\n", n, pos[0])
	return nil
}

// sinceTime reads --since: an RFC 3339 time, or a duration before now.
func sinceTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("required, e.g. 24h or 2026-03-01T00:00:00Z")
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 24h", s)
	}
	return now.Add(-d), nil
}

// printWebhook shows one endpoint; a secret in the answer goes to stdout
// with a warning on stderr that it is shown this once.
func printWebhook(stdout, stderr io.Writer, w client.Webhook, asJSON bool) error {
	if w.Secret != "" {
		fmt.Fprintln(stderr, "the signing secret is shown this once: store it now")
	}
	if asJSON {
		return printJSON(stdout, w)
	}
	rows := [][]string{{"id:", w.ID}, {"url:", w.URL}, {"description:", w.Description},
		{"enabled:", enabledText(w.Enabled)}, {"events:", eventsText(w.EventTypes)},
		{"created:", timeText(&w.CreatedAt)}, {"updated:", timeText(&w.UpdatedAt)}}
	if w.Secret != "" {
		rows = append(rows, []string{"secret:", w.Secret})
	}
	return table(stdout, "WEBHOOK\t", rows)
}

func enabledText(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func eventsText(ts []string) string {
	if len(ts) == 0 {
		return "all"
	}
	return strings.Join(ts, ",")
}
