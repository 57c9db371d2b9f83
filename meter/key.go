package meter

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// KeyHash is the SHA-256 of an API key's plaintext; it is all the store
// keeps of a key. A fast hash is enough: keys carry 256 random bits, so
// there is nothing to brute-force that a slow password hash would protect.
type KeyHash [32]byte

// HashKey returns the hash under which the key plaintext is stored.
func HashKey(plaintext string) KeyHash {
	return sha256.Sum256([]byte(plaintext))
}

// String returns the hash in lowercase hex.
func (h KeyHash) String() string { return hex.EncodeToString(h[:]) }

const (
	// keyScheme marks meterd keys so they are recognisable in logs and by
	// secret scanners.
	keyScheme = "mk_"
	// keyPrefixLen is how much of a plaintext is kept for display: the
	// scheme and 8 characters (48 bits), enough to tell keys apart but far
	// too little to guess the rest.
	keyPrefixLen = len(keyScheme) + 8
	// keyRandomBytes is the key's entropy: 256 bits.
	keyRandomBytes = 32
)

// NewKey generates an API key. The plaintext is "mk_" followed by 32 random
// bytes in unpadded base64url (43 characters): the shortest standard
// encoding whose alphabet needs no escaping in headers, URLs, env files or
// shells. prefix is the plaintext's first 11 characters, shown to identify
// the key; hash is what gets stored. The plaintext is shown once and never
// stored.
func NewKey() (plaintext string, prefix string, hash KeyHash, err error) {
	var b [keyRandomBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", KeyHash{}, fmt.Errorf("new key: %w", err)
	}
	plaintext = keyScheme + base64.RawURLEncoding.EncodeToString(b[:])
	return plaintext, plaintext[:keyPrefixLen], HashKey(plaintext), nil
}

// NewID returns a random id for an account or key: prefix, an underscore
// (added unless prefix is empty or already ends in one) and 16 hex digits
// (64 random bits), e.g. NewID("acct") == "acct_9f86d081884c7d65".
func NewID(prefix string) string {
	var b [8]byte
	// crypto/rand.Read never returns an error (since Go 1.24 it aborts the
	// process instead), so there is nothing to handle.
	_, _ = rand.Read(b[:])
	if prefix != "" && !strings.HasSuffix(prefix, "_") {
		prefix += "_"
	}
	return prefix + hex.EncodeToString(b[:])
}

// ValidKeyFormat is a cheap check of a presented key before it is hashed
// and looked up: 8 to 256 bytes of printable ASCII without spaces. It keeps
// huge or control-character values (header smuggling, log injection) away
// from the hash and the logs; it does not say the key exists.
func ValidKeyFormat(s string) bool {
	if len(s) < 8 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
