package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// TokenEnv is the environment variable that may carry the admin token.
const TokenEnv = "AGENTISO_ADMIN_TOKEN"

// GeneratedTokenFile is where, on a loopback address with no token
// configured, the daemon keeps the token it generated (in the data
// directory, root only).
const GeneratedTokenFile = "dashboard-token"

// MinTokenBytes is the shortest admin token accepted.
const MinTokenBytes = 16

// maxTokenFileBytes bounds a token file.
const maxTokenFileBytes = 4 << 10

// Token is the dashboard's admin token. Its String and LogValue are
// redacted, so no log line or error can carry it; it is only ever compared,
// in constant time.
//
// The host service's config secrets mechanism (issue 5) is meant to supply
// this value; until it lands, LoadToken reads the file or variable itself.
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
	FromEnv       TokenSource = "environment"
	FromFile      TokenSource = "file"
	FromGenerated TokenSource = "generated"
)

// LoadToken finds the admin token: the AGENTISO_ADMIN_TOKEN variable, else
// file (dashboard.admin_token_file). With neither, a loopback dashboard
// uses a token generated into dataDir/dashboard-token (made on first use,
// mode 0600); any other address refuses to start (finding H-1). It returns
// where the token came from and, for files, the path.
func LoadToken(getenv func(string) string, file, dataDir string, loopback bool) (Token, TokenSource, string, error) {
	if v := getenv(TokenEnv); v != "" {
		t, err := NewToken(strings.TrimSpace(v))
		if err != nil {
			return Token{}, "", "", errdefs.Invalidf("%s: shorter than %d characters", TokenEnv, MinTokenBytes)
		}
		return t, FromEnv, "", nil
	}
	if file != "" {
		s, err := readTokenFile(file)
		if err != nil {
			return Token{}, "", "", err
		}
		t, err := NewToken(s)
		if err != nil {
			return Token{}, "", "", errdefs.Invalidf("dashboard.admin_token_file: the token is shorter than %d characters", MinTokenBytes)
		}
		return t, FromFile, file, nil
	}
	if !loopback {
		return Token{}, "", "", errdefs.Invalidf("dashboard.listen: a dashboard on a non-loopback address needs an admin token " +
			"(set dashboard.admin_token_file to a 0600 file, or " + TokenEnv + ")")
	}
	path := filepath.Join(dataDir, GeneratedTokenFile)
	s, err := readTokenFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		s, err = generateTokenFile(path)
	}
	if err != nil {
		return Token{}, "", "", err
	}
	t, err := NewToken(s)
	if err != nil {
		return Token{}, "", "", fmt.Errorf("%s: %w", path, err)
	}
	return t, FromGenerated, path, nil
}

// readTokenFile reads a token file that only its owner, root or this
// process's user, may read.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errdefs.With(errdefs.NotFound, fmt.Sprintf("admin token file %s does not exist", path), err)
		}
		return "", fmt.Errorf("opening admin token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading admin token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", errdefs.Invalidf("admin token file %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", errdefs.Invalidf("admin token file %s: mode %04o lets others read it; chmod 600 it", path, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return "", errdefs.Invalidf("admin token file %s: owned by uid %d, not root", path, st.Uid)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading admin token file: %w", err)
	}
	if len(b) > maxTokenFileBytes {
		return "", errdefs.Invalidf("admin token file %s: larger than %d bytes", path, maxTokenFileBytes)
	}
	return strings.TrimSpace(string(b)), nil
}

// generateTokenFile writes a new random 256-bit token to path (0600),
// never replacing an existing file.
func generateTokenFile(path string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	s := base64.RawURLEncoding.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return s, nil
}
