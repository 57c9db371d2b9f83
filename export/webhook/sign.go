package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/meterd/meterd/meter"
)

// secretPrefix marks a Standard Webhooks secret: "whsec_" + base64(key).
const secretPrefix = "whsec_"

// NewSecret returns a fresh random signing secret (32-byte key).
func NewSecret() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// parseSecret returns the key of a "whsec_<base64>" secret.
func parseSecret(s string) ([]byte, error) {
	if !strings.HasPrefix(s, secretPrefix) {
		return nil, meter.Invalid("secret", "must start with %q", secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(s[len(secretPrefix):])
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, meter.Invalid("secret", "must be %q followed by the base64 of 24 to 64 random bytes", secretPrefix)
	}
	return key, nil
}

// Signature is the webhook-signature header value: one "v1,<base64 of
// HMAC-SHA256(key, id.timestamp.body)>" per valid secret, space-separated,
// so a receiver holding either secret accepts it during a rotation.
func Signature(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	msg := make([]byte, 0, len(id)+len(body)+24)
	msg = append(append(msg, id...), '.')
	msg = append(strconv.AppendInt(msg, ts.Unix(), 10), '.')
	msg = append(msg, body...)
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		key, err := parseSecret(s)
		if err != nil {
			return "", err
		}
		h := hmac.New(sha256.New, key)
		h.Write(msg)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	return strings.Join(sigs, " "), nil
}
