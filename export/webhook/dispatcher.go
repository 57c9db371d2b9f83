package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meterd/meterd/meter"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultSchedule is the wait before each retry: 11 attempts over a
// little more than 24 h before the dead letter (jitter only lengthens it).
var DefaultSchedule = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 10 * time.Hour}

// Config configures a Dispatcher. Store is required.
type Config struct {
	Store meter.WebhookStore
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Schedule is the wait before retry n (default DefaultSchedule); after
	// the last one fails the delivery is dead. Each wait is stretched by a
	// random 0–25 % (jitter), never shortened.
	Schedule []time.Duration
	// Concurrency bounds attempts in flight per endpoint (default 4).
	Concurrency int
	// Timeout bounds one attempt, connect to last byte read (default 10s).
	Timeout time.Duration
	// Poll is how often the outbox and the retries are looked at
	// (default 500ms).
	Poll time.Duration
	// RefusePrivate refuses loopback, private and link-local addresses.
	RefusePrivate bool
	Logger        *slog.Logger
	// Registerer receives the meterd_webhook_* metrics (nil: none).
	Registerer prometheus.Registerer
	// Retention is how long delivered and dead deliveries and finished
	// notices are kept (default 60 days: past any period a crossing could
	// recur in, so its id is never needed for deduplication again);
	// pruning runs hourly.
	Retention time.Duration
}

// maxResponseBytes is how much of a receiver's answer is read (and then
// dropped): enough to keep the connection reusable, never the whole of a
// hostile body. maxErrorChars bounds what the log keeps of a reason.
const (
	maxResponseBytes = 4 << 10
	maxErrorChars    = 200
	pendingScan      = 512
	fanOutBatch      = 256
)

// Dispatcher delivers pending notices in the background. The owner calls
// Start once and Close to stop it.
type Dispatcher struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
	m      *dispatchMetrics

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// attempts counts deliveries in flight; Run waits for them.
	attempts sync.WaitGroup

	// mu guards inflight: endpoint id -> seq -> delivery in progress.
	mu       sync.Mutex
	inflight map[string]map[uint64]bool
}

// New returns a Dispatcher; nothing runs until Start.
func New(cfg Config) *Dispatcher {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Schedule == nil {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 60 * 24 * time.Hour
	}
	return &Dispatcher{cfg: cfg, client: newClient(cfg.Timeout, cfg.RefusePrivate), log: cfg.Logger,
		m: newDispatchMetrics(cfg.Registerer, cfg.Store), inflight: map[string]map[uint64]bool{}}
}

// Start runs the delivery loop in its own goroutine until Close.
func (d *Dispatcher) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.Run(ctx)
	}()
}

// Close stops a loop begun by Start and waits for it.
func (d *Dispatcher) Close() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
}

// Run delivers until ctx ends, then waits for the attempts in flight
// (cut short by ctx; an interrupted attempt is simply made again later).
func (d *Dispatcher) Run(ctx context.Context) {
	defer d.attempts.Wait()
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	var pruned time.Time
	for {
		if err := d.Tick(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("webhook dispatch", "error", err)
		}
		if now := d.cfg.Now(); now.Sub(pruned) >= time.Hour {
			pruned = now
			if _, err := d.cfg.Store.PruneOutbox(ctx, now.Add(-d.cfg.Retention)); err != nil && ctx.Err() == nil {
				d.log.Warn("webhook outbox prune", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick fans new notices out and starts every due delivery; attempts run
// in the background, bounded per endpoint.
func (d *Dispatcher) Tick(ctx context.Context) error {
	for {
		n, err := d.cfg.Store.FanOut(ctx, d.cfg.Now().UTC(), fanOutBatch)
		if err != nil {
			return fmt.Errorf("fan out: %w", err)
		}
		if n < fanOutBatch {
			break
		}
	}
	eps, err := d.cfg.Store.WebhookEndpoints(ctx)
	if err != nil {
		return err
	}
	for i := range eps {
		if err := d.startDue(ctx, eps[i]); err != nil {
			return fmt.Errorf("endpoint %s: %w", eps[i].ID, err)
		}
	}
	return nil
}

// startDue starts the due deliveries of one endpoint: for each account
// only its oldest pending one (so an account's notices arrive in order),
// and no more than Concurrency at once.
func (d *Dispatcher) startDue(ctx context.Context, ep meter.WebhookEndpoint) error {
	if !ep.Enabled {
		return nil
	}
	pending, err := d.cfg.Store.PendingDeliveries(ctx, ep.ID, pendingScan)
	if err != nil {
		return err
	}
	now := d.cfg.Now()
	seen := map[string]bool{}
	for _, del := range pending {
		if seen[del.AccountID] {
			continue
		}
		seen[del.AccountID] = true
		if del.NextAttempt.After(now) || !d.claim(ep.ID, del.Seq) {
			continue
		}
		d.attempts.Add(1)
		go func() {
			defer d.attempts.Done()
			defer d.release(ep.ID, del.Seq)
			d.deliver(ctx, ep, del)
		}()
	}
	return nil
}

// claim marks a delivery in flight, if the endpoint has room.
func (d *Dispatcher) claim(endpoint string, seq uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.inflight[endpoint]
	if m == nil {
		m = map[uint64]bool{}
		d.inflight[endpoint] = m
	}
	if m[seq] || len(m) >= d.cfg.Concurrency {
		return false
	}
	m[seq] = true
	return true
}

func (d *Dispatcher) release(endpoint string, seq uint64) {
	d.mu.Lock()
	delete(d.inflight[endpoint], seq)
	d.mu.Unlock()
}

// deliver makes one attempt and records its outcome. The delivery is
// read again once claimed: the scan that found it may predate the save
// of an attempt that ended meanwhile.
func (d *Dispatcher) deliver(ctx context.Context, ep meter.WebhookEndpoint, del meter.WebhookDelivery) {
	del, ok, err := d.cfg.Store.PendingDelivery(ctx, ep.ID, del.Seq)
	if err != nil || !ok || del.NextAttempt.After(d.cfg.Now()) {
		return
	}
	n, err := d.cfg.Store.Notice(ctx, del.Seq)
	if err != nil {
		d.log.Warn("webhook notice unreadable", "endpoint", ep.ID, "seq", del.Seq, "error", err)
		return
	}
	start := d.cfg.Now()
	status, reason := d.attempt(ctx, ep, n)
	if ctx.Err() != nil {
		return // shutting down: the attempt does not count, it is made again
	}
	d.m.duration.Observe(time.Since(start).Seconds())
	d.record(&del, start, status, reason, n.Time)
	if err := d.cfg.Store.SaveDelivery(context.WithoutCancel(ctx), del); err != nil {
		d.log.Warn("webhook delivery state not saved (it will be sent again)", "endpoint", ep.ID,
			"webhook_id", n.ID, "error", err)
	}
}

// record moves del on after an attempt that got status (0: none).
func (d *Dispatcher) record(del *meter.WebhookDelivery, at time.Time, status int, reason string, noticeTime time.Time) {
	del.Attempts++
	del.LastAttempt, del.LastStatus, del.LastError = at.UTC(), status, reason
	if del.FirstAttempt.IsZero() {
		del.FirstAttempt = at.UTC()
	}
	switch {
	case status >= 200 && status < 300:
		del.Status, del.DeliveredAt, del.LastError = meter.DeliveryDelivered, d.cfg.Now().UTC(), ""
		d.m.delivered.Inc()
		d.m.lag.Observe(d.cfg.Now().Sub(noticeTime).Seconds())
	case del.Attempts > len(d.cfg.Schedule):
		del.Status = meter.DeliveryDead
		d.m.failed.Inc()
		d.m.dead.Inc()
	default:
		// The wait runs from the failure, not from the attempt's start, so
		// a slow failure does not eat into it.
		del.NextAttempt = d.cfg.Now().Add(jitter(d.cfg.Schedule[del.Attempts-1])).UTC()
		d.m.failed.Inc()
	}
}

// jitter stretches a wait by a random 0–25 %, so receivers coming back
// are not hit by every sender at the same instant.
func jitter(w time.Duration) time.Duration {
	return w + time.Duration(rand.Int64N(int64(w)/4+1))
}

// attempt sends n to ep once; it returns the HTTP status (0 if none) and
// a short reason when it was not a 2xx.
func (d *Dispatcher) attempt(ctx context.Context, ep meter.WebhookEndpoint, n meter.Notice) (int, string) {
	body, err := Payload(n)
	if err != nil {
		return 0, "encode: " + err.Error()
	}
	now := d.cfg.Now()
	sig, err := Signature(ep.ValidSecrets(now), n.ID, now, body)
	if err != nil || sig == "" {
		return 0, "no valid signing secret"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "bad url"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "meterd-webhooks")
	req.Header.Set("webhook-id", n.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, shorten(err.Error())
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, "HTTP " + strconv.Itoa(resp.StatusCode)
}

func shorten(s string) string {
	if len(s) > maxErrorChars {
		return s[:maxErrorChars] + "…"
	}
	return s
}

// Payload is the JSON body of a delivery, in the Standard Webhooks
// shape: type, timestamp, data.
func Payload(n meter.Notice) ([]byte, error) {
	return json.Marshal(struct {
		Type      meter.NoticeType `json:"type"`
		Timestamp time.Time        `json:"timestamp"`
		Data      meter.Notice     `json:"data"`
	}{n.Type, n.Time, n})
}
