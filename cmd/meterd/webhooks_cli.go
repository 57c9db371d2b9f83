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
	return remoteCommand[[]client.Webhook]{name: "meterd webhooks list",
		call: func(ctx context.Context, c *client.Client, _ []string) ([]client.Webhook, error) {
			return c.ListWebhooks(ctx)
		},
		print: printWebhooks,
	}.run(ctx, args, stdout, stderr)
}

func printWebhooks(stdout, _ io.Writer, ws []client.Webhook, asJSON bool) error {
	return printRows(stdout, ws, asJSON, "ID\tENABLED\tEVENTS\tURL\tDESCRIPTION", func(w client.Webhook) []string {
		return []string{w.ID, enabledText(w.Enabled), eventsText(w.EventTypes), w.URL, w.Description}
	})
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
	var w webhookFlags
	var disabled bool
	return remoteCommand[client.Webhook]{name: "meterd webhooks create", synopsis: "--url URL",
		flags: func(fs *flag.FlagSet) {
			w.bind(fs)
			fs.StringVar(&w.secret, "secret", "", "signing secret, whsec_ + base64 (default: generated)")
			fs.BoolVar(&disabled, "disabled", false, "create it disabled (nothing is sent until it is enabled)")
		},
		check: func(*flag.FlagSet, []string) error {
			if w.url == "" {
				return fmt.Errorf("webhooks create: --url is required%w", usageMark)
			}
			return nil
		},
		call: func(ctx context.Context, c *client.Client, _ []string) (client.Webhook, error) {
			enabled := !disabled
			return c.CreateWebhook(ctx, client.NewWebhook{URL: w.url, Description: w.description,
				EventTypes: eventList(w.events), Enabled: &enabled, Secret: w.secret})
		},
		print: printWebhook,
	}.run(ctx, args, stdout, stderr)
}

func webhooksGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return byID("meterd webhooks get", "ID", (*client.Client).GetWebhook, printWebhook).run(ctx, args, stdout, stderr)
}

func webhooksUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var w webhookFlags
	var enabled, rotate bool
	var p client.WebhookPatch
	return remoteCommand[client.Webhook]{name: "meterd webhooks update", synopsis: "ID", args: []string{"ID"},
		flags: func(fs *flag.FlagSet) {
			w.bind(fs)
			fs.BoolVar(&enabled, "enabled", true, "--enabled=false stops sending to it (deliveries wait), --enabled=true resumes")
			fs.BoolVar(&rotate, "rotate-secret", false, "make a new signing secret (--secret, or generated); the old one stays valid for 24h")
			fs.StringVar(&w.secret, "secret", "", "the new secret, with --rotate-secret")
		},
		check: func(fs *flag.FlagSet, _ []string) error {
			p = w.patch(fs, &enabled, rotate)
			if p.Secret != nil && !p.RotateSecret {
				return fmt.Errorf("webhooks update: --secret needs --rotate-secret%w", usageMark)
			}
			if p.URL == nil && p.Description == nil && p.EventTypes == nil && p.Enabled == nil && !p.RotateSecret {
				return fmt.Errorf("webhooks update: nothing to change: give --url, --description, --events, --enabled or --rotate-secret%w", usageMark)
			}
			return nil
		},
		call: func(ctx context.Context, c *client.Client, pos []string) (client.Webhook, error) {
			return c.UpdateWebhook(ctx, pos[0], p)
		},
		print: printWebhook,
	}.run(ctx, args, stdout, stderr)
}

// patch holds the fields whose flags were given, so that update changes
// only what the admin named.
func (w *webhookFlags) patch(fs *flag.FlagSet, enabled *bool, rotate bool) client.WebhookPatch {
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
			p.RotateSecret = rotate
		case "secret":
			p.Secret = &w.secret
		}
	})
	return p
}

func webhooksDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var yes bool
	return remoteCommand[idDone]{name: "meterd webhooks delete", synopsis: "ID --yes", args: []string{"ID"},
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&yes, "yes", false, "confirm: remove the endpoint; its pending deliveries are not sent")
		},
		check: func(_ *flag.FlagSet, pos []string) error {
			if !yes {
				return fmt.Errorf("webhooks delete: pass --yes to delete %s (its pending deliveries are dropped)%w", pos[0], usageMark)
			}
			return nil
		},
		call: func(ctx context.Context, c *client.Client, pos []string) (idDone, error) {
			return idDone{id: pos[0], verb: "deleted"}, c.DeleteWebhook(ctx, pos[0])
		},
		print: printIDDone,
	}.run(ctx, args, stdout, stderr)
}

func webhooksDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var status string
	var limit int
	return remoteCommand[[]client.Delivery]{name: "meterd webhooks deliveries", synopsis: "ID", args: []string{"ID"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&status, "status", "", "only deliveries in this state: pending, delivered or dead")
			fs.IntVar(&limit, "limit", 100, "at most this many, newest first (1..1000)")
		},
		call: func(ctx context.Context, c *client.Client, pos []string) ([]client.Delivery, error) {
			return c.Deliveries(ctx, pos[0], client.DeliveryOptions{Status: status, Limit: limit})
		},
		print: printDeliveries,
	}.run(ctx, args, stdout, stderr)
}

func printDeliveries(stdout, _ io.Writer, ds []client.Delivery, asJSON bool) error {
	return printRows(stdout, ds, asJSON, "NOTICE ID\tEVENT\tACCOUNT\tSTATUS\tATTEMPTS\tCREATED\tLAST ATTEMPT\tLAST ANSWER",
		func(d client.Delivery) []string {
			return []string{d.NoticeID, d.EventType, d.AccountID, d.Status, strconv.Itoa(d.Attempts),
				timeText(&d.CreatedAt), timeText(&d.LastAttempt), lastAnswer(d)}
		})
}

// lastAnswer is the receiver's last HTTP status and the error, "-" before
// any answer.
func lastAnswer(d client.Delivery) string {
	answer := "-"
	if d.LastStatus != 0 {
		answer = strconv.Itoa(d.LastStatus)
	}
	if d.LastError != "" {
		answer += " " + d.LastError
	}
	return answer
}

func webhooksReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sinceText string
	var all bool
	var since time.Time
	return remoteCommand[replayed]{name: "meterd webhooks replay", synopsis: "ID --since T", args: []string{"ID"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&sinceText, "since", "", "replay notices made at or after this: RFC 3339 time (2026-03-01T00:00:00Z) or a duration ago (24h)")
			fs.BoolVar(&all, "all", false, "replay delivered deliveries too, not only dead ones")
		},
		check: func(*flag.FlagSet, []string) (err error) {
			if since, err = sinceTime(sinceText, time.Now()); err != nil {
				return fmt.Errorf("webhooks replay: --since: %v%w", err, usageMark)
			}
			return nil
		},
		call: func(ctx context.Context, c *client.Client, pos []string) (replayed, error) {
			n, err := c.ReplayWebhook(ctx, pos[0], since, all)
			return replayed{ID: pos[0], Replayed: n}, err
		},
		print: func(stdout, _ io.Writer, r replayed, asJSON bool) error {
			if asJSON {
				return printJSON(stdout, r)
			}
			fmt.Fprintf(stdout, "replaying %d deliveries to %s\n", r.Replayed, r.ID)
			return nil
		},
	}.run(ctx, args, stdout, stderr)
}

// replayed is what webhooks replay prints: the endpoint and how many
// deliveries it queued again.
type replayed struct {
	ID       string `json:"id"`
	Replayed int    `json:"replayed"`
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
