package ledger

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/meterd/meterd/meter"
	bolt "go.etcd.io/bbolt"
)

// storedKey is an API key as kept on disk: the hash travels with it (the
// domain type hides it from JSON on purpose).
type storedKey struct {
	meter.APIKey
	HashHex string `json:"hash"`
}

// Accounts implements meter.Store.
func (l *Ledger) Accounts(ctx context.Context) ([]meter.Account, error) {
	var out []meter.Account
	err := l.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAccounts).ForEach(func(k, v []byte) error {
			var a meter.Account
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("account %q: %w", k, err)
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// Keys implements meter.Store.
func (l *Ledger) Keys(ctx context.Context) ([]meter.APIKey, error) {
	var out []meter.APIKey
	err := l.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			key, err := decodeKey(v)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			out = append(out, key)
			return nil
		})
	})
	return out, err
}

func decodeKey(v []byte) (meter.APIKey, error) {
	var sk storedKey
	if err := json.Unmarshal(v, &sk); err != nil {
		return meter.APIKey{}, err
	}
	h, err := hex.DecodeString(sk.HashHex)
	if err != nil || len(h) != len(sk.Hash) {
		return meter.APIKey{}, fmt.Errorf("bad hash")
	}
	copy(sk.Hash[:], h)
	return sk.APIKey, nil
}

// PutAccount implements meter.Store.
func (l *Ledger) PutAccount(ctx context.Context, a meter.Account) error {
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("put account: %w", err)
	}
	return l.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAccounts).Put([]byte(a.ID), v)
	})
}

// PutKey implements meter.Store.
func (l *Ledger) PutKey(ctx context.Context, k meter.APIKey) error {
	v, err := json.Marshal(storedKey{APIKey: k, HashHex: hex.EncodeToString(k.Hash[:])})
	if err != nil {
		return fmt.Errorf("put key: %w", err)
	}
	return l.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).Put([]byte(k.ID), v)
	})
}
