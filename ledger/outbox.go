package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// The outbox: notices (webhook events) stored in the same transaction as
// their cause, then fanned out to one delivery per endpoint.
var (
	bucketOutbox    = []byte("outbox")            // seq(8) -> notice
	bucketOutboxIDs = []byte("outbox_ids")        // notice id -> seq(8)
	bucketHooks     = []byte("webhook_endpoints") // id -> endpoint
	bucketPending   = []byte("webhook_pending")   // endpoint\0 seq(8) -> delivery
	bucketHookLog   = []byte("webhook_log")       // endpoint\0 seq(8) -> finished delivery
)

// fanoutCursor names how far the outbox has been fanned out.
const fanoutCursor = "webhook_fanout"

// Records of the outbox are rare (a few per account and period), so they
// are JSON behind a version byte rather than a hand-made layout.
const outboxCodecV1 = 1

var (
	_ meter.WebhookStore       = (*Ledger)(nil)
	_ meter.AccountNoticeStore = (*Ledger)(nil)
)

func init() {
	allBuckets = append(allBuckets, bucketOutbox, bucketOutboxIDs, bucketHooks, bucketPending, bucketHookLog)
}

func encodeRecord(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{outboxCodecV1}, b...), nil
}

func decodeRecord(b []byte, v any) error {
	if len(b) == 0 || b[0] != outboxCodecV1 {
		return errors.New("ledger: unknown outbox record version")
	}
	return json.Unmarshal(b[1:], v)
}

// putEventNotices stores the notices a call caused, inside the group
// commit that stores the call: the writer's one hook into the outbox.
func putEventNotices(tx *bolt.Tx, ev *meter.Event) error {
	ns := *ev.Notices
	for i := range ns {
		ns[i].EventSeq = ev.Seq
		if err := putNotice(tx, &ns[i]); err != nil {
			return err
		}
	}
	return nil
}

// putNotice appends n to the outbox unless a notice with its id is there
// already: a crossing has one id, so it is stored once whatever happens.
func putNotice(tx *bolt.Tx, n *meter.Notice) error {
	ids := tx.Bucket(bucketOutboxIDs)
	if ids.Get([]byte(n.ID)) != nil {
		return nil
	}
	b := tx.Bucket(bucketOutbox)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	n.Seq = seq
	v, err := encodeRecord(n)
	if err != nil {
		return fmt.Errorf("encode notice: %w", err)
	}
	if err := b.Put(seqKey(seq), v); err != nil {
		return err
	}
	return ids.Put([]byte(n.ID), seqKey(seq))
}

// PutNotices implements meter.NoticeSink for notices not caused by a call.
func (l *Ledger) PutNotices(ctx context.Context, ns []meter.Notice) error {
	return l.update(ctx, func(tx *bolt.Tx) error {
		for i := range ns {
			if err := putNotice(tx, &ns[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutAccountNotices implements meter.AccountNoticeStore: the account and
// the notices its change caused commit together.
func (l *Ledger) PutAccountNotices(ctx context.Context, a meter.Account, ns []meter.Notice) error {
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("put account: %w", err)
	}
	return l.update(ctx, func(tx *bolt.Tx) error {
		for i := range ns {
			if err := putNotice(tx, &ns[i]); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketAccounts).Put([]byte(a.ID), v)
	})
}

// Notice implements meter.WebhookStore.
func (l *Ledger) Notice(ctx context.Context, seq uint64) (meter.Notice, error) {
	var n meter.Notice
	err := l.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOutbox).Get(seqKey(seq))
		if v == nil {
			return fmt.Errorf("notice %d: not in the outbox", seq)
		}
		return decodeRecord(v, &n)
	})
	n.Seq = seq
	return n, err
}

// Notices returns up to limit notices with Seq > after, in outbox order.
func (l *Ledger) Notices(ctx context.Context, after uint64, limit int) ([]meter.Notice, error) {
	var out []meter.Notice
	err := l.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = noticesAfter(tx, after, limit)
		return err
	})
	return out, err
}

func noticesAfter(tx *bolt.Tx, after uint64, limit int) ([]meter.Notice, error) {
	var out []meter.Notice
	c := tx.Bucket(bucketOutbox).Cursor()
	for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
		var n meter.Notice
		if err := decodeRecord(v, &n); err != nil {
			return nil, fmt.Errorf("notice %d: %w", getUint64(k), err)
		}
		n.Seq = getUint64(k)
		out = append(out, n)
	}
	return out, nil
}

// NoticeCount implements meter.WebhookStore.
func (l *Ledger) NoticeCount(ctx context.Context) (int, error) {
	var n int
	err := l.view(ctx, func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketOutbox).Stats().KeyN
		return nil
	})
	return n, err
}

// PendingCount implements meter.WebhookStore.
func (l *Ledger) PendingCount(ctx context.Context) (int, error) {
	var n int
	err := l.view(ctx, func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketPending).Stats().KeyN
		return nil
	})
	return n, err
}

// PutWebhookEndpoint implements meter.WebhookStore.
func (l *Ledger) PutWebhookEndpoint(ctx context.Context, e meter.WebhookEndpoint) error {
	v, err := encodeRecord(storedEndpoint{e, e.Secrets})
	if err != nil {
		return err
	}
	return l.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHooks).Put([]byte(e.ID), v)
	})
}

// storedEndpoint keeps the secrets, which the endpoint's JSON omits.
type storedEndpoint struct {
	meter.WebhookEndpoint
	Secrets []meter.WebhookSecret `json:"secrets"`
}

// DeleteWebhookEndpoint implements meter.WebhookStore; the endpoint's
// pending deliveries go with it, its log stays.
func (l *Ledger) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	return l.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHooks)
		if b.Get([]byte(id)) == nil {
			return meter.ErrWebhookNotFound
		}
		prefix := append([]byte(id), 0)
		c := tx.Bucket(bucketPending).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return b.Delete([]byte(id))
	})
}

// WebhookEndpoints implements meter.WebhookStore.
func (l *Ledger) WebhookEndpoints(ctx context.Context) ([]meter.WebhookEndpoint, error) {
	var out []meter.WebhookEndpoint
	err := l.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = endpointsIn(tx)
		return err
	})
	return out, err
}

func endpointsIn(tx *bolt.Tx) ([]meter.WebhookEndpoint, error) {
	var out []meter.WebhookEndpoint
	err := tx.Bucket(bucketHooks).ForEach(func(k, v []byte) error {
		var s storedEndpoint
		if err := decodeRecord(v, &s); err != nil {
			return fmt.Errorf("webhook endpoint %s: %w", k, err)
		}
		s.WebhookEndpoint.Secrets = s.Secrets
		out = append(out, s.WebhookEndpoint)
		return nil
	})
	return out, err
}

func deliveryKey(endpoint string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(endpoint), 0), seq)
}

// FanOut implements meter.WebhookStore. It looks before it writes, so
// an idle outbox costs a read, not a commit.
func (l *Ledger) FanOut(ctx context.Context, now time.Time, limit int) (int, error) {
	var behind bool
	err := l.view(ctx, func(tx *bolt.Tx) error {
		after := getUint64(tx.Bucket(bucketCursors).Get([]byte(fanoutCursor)))
		behind = tx.Bucket(bucketOutbox).Sequence() > after
		return nil
	})
	if err != nil || !behind {
		return 0, err
	}
	var took int
	err = l.update(ctx, func(tx *bolt.Tx) error {
		cursors := tx.Bucket(bucketCursors)
		after := getUint64(cursors.Get([]byte(fanoutCursor)))
		ns, err := noticesAfter(tx, after, limit)
		if err != nil || len(ns) == 0 {
			return err
		}
		eps, err := endpointsIn(tx)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if err := fanOutOne(tx, n, eps, now); err != nil {
				return err
			}
		}
		took = len(ns)
		return cursors.Put([]byte(fanoutCursor), seqKey(ns[len(ns)-1].Seq))
	})
	return took, err
}

func fanOutOne(tx *bolt.Tx, n meter.Notice, eps []meter.WebhookEndpoint, now time.Time) error {
	for i := range eps {
		if !eps[i].Wants(n.Type) {
			continue
		}
		d := meter.WebhookDelivery{EndpointID: eps[i].ID, Seq: n.Seq, NoticeID: n.ID, Type: n.Type,
			AccountID: n.AccountID, Status: meter.DeliveryPending, NextAttempt: now, CreatedAt: now}
		if err := putDelivery(tx, bucketPending, d); err != nil {
			return err
		}
	}
	return nil
}

func putDelivery(tx *bolt.Tx, bucket []byte, d meter.WebhookDelivery) error {
	v, err := encodeRecord(d)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put(deliveryKey(d.EndpointID, d.Seq), v)
}

// PendingDeliveries implements meter.WebhookStore.
func (l *Ledger) PendingDeliveries(ctx context.Context, endpointID string, limit int) ([]meter.WebhookDelivery, error) {
	var out []meter.WebhookDelivery
	err := l.view(ctx, func(tx *bolt.Tx) error {
		prefix := append([]byte(endpointID), 0)
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			var d meter.WebhookDelivery
			if err := decodeRecord(v, &d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// PendingDelivery implements meter.WebhookStore.
func (l *Ledger) PendingDelivery(ctx context.Context, endpointID string, seq uint64) (meter.WebhookDelivery, bool, error) {
	var d meter.WebhookDelivery
	var ok bool
	err := l.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPending).Get(deliveryKey(endpointID, seq))
		if v == nil {
			return nil
		}
		ok = true
		return decodeRecord(v, &d)
	})
	return d, ok, err
}

// SaveDelivery implements meter.WebhookStore. A delivery whose endpoint
// was deleted meanwhile is dropped.
func (l *Ledger) SaveDelivery(ctx context.Context, d meter.WebhookDelivery) error {
	return l.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketHooks).Get([]byte(d.EndpointID)) == nil {
			return nil
		}
		if d.Status == meter.DeliveryPending {
			return putDelivery(tx, bucketPending, d)
		}
		if err := tx.Bucket(bucketPending).Delete(deliveryKey(d.EndpointID, d.Seq)); err != nil {
			return err
		}
		return putDelivery(tx, bucketHookLog, d)
	})
}

// DeliveryLog implements meter.WebhookStore: pending first (they are the
// newest news), then the finished ones from the newest back.
func (l *Ledger) DeliveryLog(ctx context.Context, endpointID string, status meter.DeliveryStatus, limit int) ([]meter.WebhookDelivery, error) {
	var out []meter.WebhookDelivery
	err := l.view(ctx, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketPending, bucketHookLog} {
			if err := logFrom(tx.Bucket(name), endpointID, status, limit, &out); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func logFrom(b *bolt.Bucket, endpointID string, status meter.DeliveryStatus, limit int, out *[]meter.WebhookDelivery) error {
	prefix := append([]byte(endpointID), 0)
	c := b.Cursor()
	k, v := c.Seek(deliveryKey(endpointID, ^uint64(0)))
	if k == nil || !bytes.HasPrefix(k, prefix) {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix) && len(*out) < limit; k, v = c.Prev() {
		var d meter.WebhookDelivery
		if err := decodeRecord(v, &d); err != nil {
			return err
		}
		if status == "" || d.Status == status {
			*out = append(*out, d)
		}
	}
	return nil
}

// Replay implements meter.WebhookStore.
func (l *Ledger) Replay(ctx context.Context, endpointID string, since, now time.Time, all bool) (int, error) {
	var n int
	err := l.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		if tx.Bucket(bucketHooks).Get([]byte(endpointID)) == nil {
			return meter.ErrWebhookNotFound
		}
		var moved []meter.WebhookDelivery
		if err := logFrom(tx.Bucket(bucketHookLog), endpointID, "", int(^uint(0)>>1), &moved); err != nil {
			return err
		}
		for _, d := range moved {
			if (!all && d.Status != meter.DeliveryDead) || d.CreatedAt.Before(since) {
				continue
			}
			if err := tx.Bucket(bucketHookLog).Delete(deliveryKey(endpointID, d.Seq)); err != nil {
				return err
			}
			d.Status, d.Attempts, d.NextAttempt, d.FirstAttempt, d.LastError = meter.DeliveryPending, 0, now, time.Time{}, ""
			if err := putDelivery(tx, bucketPending, d); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
