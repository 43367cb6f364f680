package approval

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// NewToken returns a fresh one-time token (256 bits from crypto/rand, URL-safe
// base64) and the hex SHA-256 under which it is stored.
func NewToken() (raw, hash string) {
	raw = randomString(32)
	return raw, HashToken(raw)
}

// HashToken is the stored form of a raw token.
func HashToken(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// NewPageKey returns a random page name (128 bits), independent of any token.
func NewPageKey() string { return randomString(16) }

// NewID returns a random request ID.
func NewID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return idEncoding.EncodeToString(b)
}

// IDFromTaskToken derives a stable request ID from a workflow task token, so that a
// retried notification for the same task finds the request it already created.
// The ID reveals nothing about the task token.
func IDFromTaskToken(taskToken string) string {
	sum := sha256.Sum256([]byte("approvalbot/request-id\x00" + taskToken))
	return idEncoding.EncodeToString(sum[:10])
}

// ShortHash is a short, non-reversible prefix of a secret's hash, for correlating
// log lines without logging the secret.
func ShortHash(secret string) string {
	if secret == "" {
		return ""
	}
	return HashToken(secret)[:12]
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ValidID reports whether s has the shape of a request ID.
func ValidID(s string) bool {
	if len(s) != 16 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz234567") == ""
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics on broken entropy sources)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewRequestToken returns a fresh personal token of request id:
// "<id>.<secret>", with a 256-bit secret. The token names its request, so that
// a vote is one write on the request; only the hash of the whole token is
// stored.
func NewRequestToken(id string) string { return id + "." + randomString(32) }

// TokenRequestID returns the request ID a token names, or "" for a token of
// the first version (a bare secret).
func TokenRequestID(token string) string {
	id, _, ok := strings.Cut(token, ".")
	if !ok || !ValidID(id) {
		return ""
	}
	return id
}

// newLease names one run of effects.
func newLease() string { return randomString(9) }
