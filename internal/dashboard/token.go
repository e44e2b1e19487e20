package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/secret"
)

// GeneratedTokenFile is where, on a loopback address with no token
// configured, the daemon keeps the token it generated (in the data
// directory, root only).
const GeneratedTokenFile = "dashboard-token"

// MinTokenBytes is the shortest admin token accepted.
const MinTokenBytes = 16

// Token is the dashboard's admin token. Its String and LogValue are
// redacted, so no log line or error can carry it; it is only ever compared,
// in constant time.
type Token struct {
	sum [sha256.Size]byte
}

// NewToken wraps s. It must be at least MinTokenBytes long.
func NewToken(s string) (Token, error) {
	if len(s) < MinTokenBytes {
		return Token{}, errdefs.Invalidf("admin token: shorter than %d characters", MinTokenBytes)
	}
	return Token{sum: sha256.Sum256([]byte(s))}, nil
}

// Equal reports whether candidate is the token. The comparison takes the
// same time whatever candidate is (finding H-5): both sides are hashed to a
// fixed length first, then compared with subtle.ConstantTimeCompare.
func (t Token) Equal(candidate string) bool {
	c := sha256.Sum256([]byte(candidate))
	return subtle.ConstantTimeCompare(t.sum[:], c[:]) == 1
}

// IsZero reports whether no token is set.
func (t Token) IsZero() bool { return t.sum == [sha256.Size]byte{} }

func (Token) String() string               { return "[redacted]" }
func (Token) GoString() string             { return "[redacted]" }
func (Token) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (Token) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// TokenSource says where LoadToken found the token.
type TokenSource string

// The token sources.
const (
	// FromConfig is the token the configuration gives (config.LoadSecrets:
	// $AGENTISO_ADMIN_TOKEN or secrets.admin_token_file).
	FromConfig TokenSource = "configured"
	// FromGenerated is a token the daemon generated for a loopback
	// dashboard.
	FromGenerated TokenSource = "generated"
)

// LoadToken returns the admin token. A configured one (the secret
// config.LoadSecrets read, the one way the token is given) is used as is.
// With none, a loopback dashboard uses a token generated into
// dataDir/dashboard-token (made on first use, mode 0600, read back with
// secret.ReadFile like any secret file); any other address refuses to
// start (finding H-1). It returns where the token came from and, for the
// generated one, its file.
func LoadToken(configured secret.Secret, dataDir string, loopback bool) (Token, TokenSource, string, error) {
	if !configured.IsZero() {
		t, err := NewToken(configured.Reveal())
		if err != nil {
			return Token{}, "", "", err
		}
		return t, FromConfig, "", nil
	}
	if !loopback {
		return Token{}, "", "", errdefs.Invalidf("dashboard.listen: a dashboard on a non-loopback address needs an admin token " +
			"(set secrets.admin_token_file to a root-owned 0600 file, or $AGENTISO_ADMIN_TOKEN)")
	}
	path := filepath.Join(dataDir, GeneratedTokenFile)
	s, err := secret.ReadFile(path)
	if err != nil {
		if _, serr := os.Lstat(path); !errors.Is(serr, fs.ErrNotExist) {
			return Token{}, "", "", err
		}
		if s, err = generateTokenFile(path); err != nil {
			return Token{}, "", "", err
		}
	}
	t, err := NewToken(s.Reveal())
	if err != nil {
		return Token{}, "", "", fmt.Errorf("%s: %w", path, err)
	}
	return t, FromGenerated, path, nil
}

// generateTokenFile writes a new random 256-bit token to path (0600),
// never replacing an existing file.
func generateTokenFile(path string) (secret.Secret, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return secret.Secret{}, err
	}
	s := base64.RawURLEncoding.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return secret.Secret{}, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return secret.Secret{}, fmt.Errorf("writing %s: %w", path, err)
	}
	return secret.New(s), nil
}
