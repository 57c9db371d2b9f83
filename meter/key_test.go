package meter_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/meterd/meterd/meter"
)

func TestNewKey(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	seenHash := make(map[meter.KeyHash]bool, n)
	for range n {
		plain, prefix, hash, err := meter.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if seen[plain] || seenHash[hash] {
			t.Fatalf("duplicate key %q", plain)
		}
		seen[plain], seenHash[hash] = true, true
		checkNewKey(t, plain, prefix, hash)
	}
}

func checkNewKey(t *testing.T, plain, prefix string, hash meter.KeyHash) {
	t.Helper()
	body, ok := strings.CutPrefix(plain, "mk_")
	if !ok || len(plain) != 46 {
		t.Fatalf("key %q: want mk_ and 43 characters", plain)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(body); err != nil || len(raw) != 32 {
		t.Fatalf("key %q: body is not 32 bytes of base64url: %v", plain, err)
	}
	if len(prefix) != 11 || !strings.HasPrefix(plain, prefix) {
		t.Fatalf("prefix %q of key %q: want its first 11 characters", prefix, plain)
	}
	if hash != meter.HashKey(plain) {
		t.Fatalf("hash of %q is not HashKey(plaintext)", plain)
	}
	if !meter.ValidKeyFormat(plain) {
		t.Fatalf("ValidKeyFormat(%q) = false for a generated key", plain)
	}
}

func TestHashKey(t *testing.T) {
	tests := []struct{ in, want string }{
		// Known SHA-256 vectors.
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			h := meter.HashKey(tt.in)
			if got := h.String(); got != tt.want {
				t.Fatalf("HashKey(%q).String() = %s, want %s", tt.in, got, tt.want)
			}
			if sum := sha256.Sum256([]byte(tt.in)); hex.EncodeToString(sum[:]) != h.String() {
				t.Fatal("HashKey is not SHA-256")
			}
		})
	}
}

func TestNewID(t *testing.T) {
	tests := []struct {
		prefix string
		want   *regexp.Regexp
	}{
		{"acct", regexp.MustCompile(`^acct_[0-9a-f]{16}$`)},
		{"acct_", regexp.MustCompile(`^acct_[0-9a-f]{16}$`)},
		{"key", regexp.MustCompile(`^key_[0-9a-f]{16}$`)},
		{"", regexp.MustCompile(`^[0-9a-f]{16}$`)},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			seen := make(map[string]bool)
			for range 1000 {
				id := meter.NewID(tt.prefix)
				if !tt.want.MatchString(id) || seen[id] {
					t.Fatalf("NewID(%q) = %q: bad form or duplicate", tt.prefix, id)
				}
				seen[id] = true
			}
		})
	}
}

func TestValidKeyFormat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"Generated", "mk_" + strings.Repeat("Ab-_9", 8) + "xyz", true},
		{"Shortest", "12345678", true},
		{"Longest", strings.Repeat("k", 256), true},
		{"Empty", "", false},
		{"TooShort", "1234567", false},
		{"TooLong", strings.Repeat("k", 257), false},
		{"TenKilobytes", strings.Repeat("k", 10<<10), false},
		{"CR", "mk_abcdef\rX", false},
		{"LF", "mk_abcdef\nX", false},
		{"NUL", "mk_abc\x00def", false},
		{"Tab", "mk_abc\tdef", false},
		{"Space", "mk_abc def", false},
		{"DEL", "mk_abc\x7fdef", false},
		{"NonASCII", "mk_abcdéf", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := meter.ValidKeyFormat(tt.in); got != tt.want {
				t.Fatalf("ValidKeyFormat(%.40q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
