package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/meterd/meterd/export/webhook"
	"github.com/meterd/meterd/httpapi"
	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"
)

// WebhookConfig configures usage notices and their webhook delivery.
type WebhookConfig struct {
	// Webhooks records threshold crossings and delivers notices (on by
	// default; off, the hot path does no notice work at all).
	Webhooks bool
	// WebhookThresholds is a JSON or YAML file of thresholds: default,
	// per plan, per account (default: 80 % and 100 % for everyone).
	WebhookThresholds string
	// WebhookRefusePrivate: auto (refuse internal addresses unless
	// --listen is loopback), true or false.
	WebhookRefusePrivate string
	WebhookTimeout       time.Duration
	WebhookConcurrency   int
	WebhookPoll          time.Duration
	// WebhookSchedule is the comma-separated retry waits (default: the
	// 24 h schedule of export/webhook).
	WebhookSchedule string
}

func (c *Config) bindWebhookFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Webhooks, "webhooks", envBool("METER_WEBHOOKS", true), "record usage notices (thresholds, limit, overage, billing, plan changes) and deliver them to webhook endpoints (env METER_WEBHOOKS)")
	fs.StringVar(&c.WebhookThresholds, "webhook-thresholds", env("METER_WEBHOOK_THRESHOLDS", ""), "JSON or YAML file of thresholds {default, plans, accounts} each {percent: [...], spend_cents: [...]}; default 80 and 100 percent (env METER_WEBHOOK_THRESHOLDS)")
	fs.StringVar(&c.WebhookRefusePrivate, "webhook-refuse-private", env("METER_WEBHOOK_REFUSE_PRIVATE", "auto"), "refuse webhook URLs on loopback, private and link-local addresses: auto (yes unless --listen is loopback), true, false (env METER_WEBHOOK_REFUSE_PRIVATE)")
	fs.DurationVar(&c.WebhookTimeout, "webhook-timeout", envDuration("METER_WEBHOOK_TIMEOUT", 10*time.Second), "time limit of one delivery attempt (env METER_WEBHOOK_TIMEOUT)")
	fs.IntVar(&c.WebhookConcurrency, "webhook-concurrency", envInt("METER_WEBHOOK_CONCURRENCY", 4), "delivery attempts in flight per endpoint (env METER_WEBHOOK_CONCURRENCY)")
	fs.DurationVar(&c.WebhookPoll, "webhook-poll", envDuration("METER_WEBHOOK_POLL", 500*time.Millisecond), "how often the outbox and retries are looked at (env METER_WEBHOOK_POLL)")
	fs.StringVar(&c.WebhookSchedule, "webhook-retry-schedule", env("METER_WEBHOOK_RETRY_SCHEDULE", ""), "comma-separated waits before each retry, e.g. 5s,1m,10m; after the last the delivery is dead; default spans over 24h (env METER_WEBHOOK_RETRY_SCHEDULE)")
}

func (c *Config) validateWebhooks() error {
	if _, err := c.refusePrivate(); err != nil {
		return err
	}
	if _, err := c.schedule(); err != nil {
		return err
	}
	return nil
}

func (c *Config) refusePrivate() (bool, error) {
	switch strings.ToLower(c.WebhookRefusePrivate) {
	case "auto", "":
		host, _, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return true, nil
		}
		ip := net.ParseIP(host)
		return !(host == "localhost" || (ip != nil && ip.IsLoopback())), nil
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	}
	return false, fmt.Errorf("--webhook-refuse-private: must be auto, true or false, not %q", c.WebhookRefusePrivate)
}

func (c *Config) schedule() ([]time.Duration, error) {
	if strings.TrimSpace(c.WebhookSchedule) == "" {
		return nil, nil
	}
	var out []time.Duration
	for _, s := range strings.Split(c.WebhookSchedule, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--webhook-retry-schedule: %q is not a positive duration", s)
		}
		out = append(out, d)
	}
	return out, nil
}

// loadThresholds reads the thresholds file (YAML or JSON), unknown
// fields refused.
func loadThresholds(path string) (*meter.NoticeConfig, error) {
	cfg := &meter.NoticeConfig{Default: meter.DefaultThresholds()}
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--webhook-thresholds: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("--webhook-thresholds %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("--webhook-thresholds %s: %w", path, err)
	}
	return cfg, nil
}

// startWebhooks turns notices on in the meter and runs the dispatcher
// until Close; it returns the admin side for the API (nil when off).
func (m *Main) startWebhooks(reg prometheus.Registerer) (*webhook.Admin, error) {
	c := &m.Config
	if !c.Webhooks {
		return nil, nil
	}
	th, err := loadThresholds(c.WebhookThresholds)
	if err != nil {
		return nil, err
	}
	refuse, _ := c.refusePrivate()
	sched, _ := c.schedule()
	m.meter.SetNotices(th, m.ledger)
	d := webhook.New(webhook.Config{Store: m.ledger, Schedule: sched, Concurrency: c.WebhookConcurrency,
		Timeout: c.WebhookTimeout, Poll: c.WebhookPoll, RefusePrivate: refuse, Logger: m.log, Registerer: reg})
	m.goBackground(d.Run)
	m.goBackground(m.savePlanChanges)
	return webhook.NewAdmin(m.ledger, nil, refuse, 0), nil
}

// planChangeEvery is how often scheduled plan changes that fell due are
// stored with their account.plan_changed notice.
const planChangeEvery = 30 * time.Second

// savePlanChanges stores due scheduled plan changes and their notices,
// at start (changes due while meterd was down) and then periodically.
func (m *Main) savePlanChanges(ctx context.Context) {
	t := time.NewTicker(planChangeEvery)
	defer t.Stop()
	for {
		if err := m.meter.SaveDuePlanChanges(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("scheduled plan changes: will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// webhookAPI keeps a nil *Admin from becoming a non-nil interface.
func webhookAPI(a *webhook.Admin) httpapi.Webhooks {
	if a == nil {
		return nil
	}
	return a
}
