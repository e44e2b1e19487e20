// Package secret carries secrets (tokens, passwords) through agentiso so that
// no code path can print or log one by accident: a Secret formats, logs and
// marshals as "[redacted]" whatever the verb or encoder, and only Reveal
// gives the value, where it is used.
//
// Secrets come from a file of their own, readable by its owner only
// (ReadFile), or from the environment; never from the configuration file,
// which other users may read (finding L-11).
package secret

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"unicode"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Redacted is what a Secret shows instead of its value.
const Redacted = "[redacted]"

// MaxFileBytes bounds a secret file.
const MaxFileBytes = 4 << 10

// Secret is a value that must never be shown. The zero value is no secret.
type Secret struct {
	v string
}

// New wraps s.
func New(s string) Secret { return Secret{v: s} }

// Reveal returns the value: call it only where the value is used (a
// comparison, a header sent upstream), never to show it.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether there is no secret.
func (s Secret) IsZero() bool { return s.v == "" }

// Equal compares guess with the secret in constant time (for the same
// length), so the comparison leaks nothing through its timing.
func (s Secret) Equal(guess string) bool {
	if s.v == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(s.v), []byte(guess)) == 1
}

// String returns Redacted (or "" for no secret).
func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return Redacted
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// Format prints String for every verb, so neither %x nor %d nor %+v can
// reach the value.
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// LogValue is String, for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText is String, for every text encoder (JSON keys, TOML, ...).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON is String as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// ReadFile reads a secret from its own file. The file must be a regular
// file (not a symlink), owned by this process's user, with no permissions
// for group or others (0600 or 0400), at most MaxFileBytes; one trailing
// newline is dropped, and the rest must be printable with no spaces. Errors
// are Invalid, name the file and never show its content.
func ReadFile(path string) (Secret, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return Secret{}, errdefs.Invalidf("secret file %s: is a symlink; name the file itself", path)
		}
		return Secret{}, errdefs.With(errdefs.Invalid, fmt.Sprintf("secret file %s: cannot be read", path), err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Secret{}, fmt.Errorf("secret file %s: %w", path, err)
	}
	if err := CheckFileInfo(path, fi); err != nil {
		return Secret{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return Secret{}, fmt.Errorf("reading secret file %s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return Secret{}, errdefs.Invalidf("secret file %s: larger than %d bytes", path, MaxFileBytes)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if err := checkValue(s); err != nil {
		return Secret{}, errdefs.Invalidf("secret file %s: %v", path, err)
	}
	return New(s), nil
}

// CheckFileInfo checks what ReadFile requires of a secret file's mode and
// owner; `agentiso check` uses it too.
func CheckFileInfo(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return errdefs.Invalidf("secret file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return errdefs.Invalidf("secret file %s: mode %04o lets other users read it; chmod 0600 %s", path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return errdefs.Invalidf("secret file %s: owned by uid %d, not by this process's user (uid %d); chown it", path, st.Uid, os.Geteuid())
	}
	return nil
}

// FromEnv returns the secret in environment variable name, if it is set.
func FromEnv(name string) (Secret, bool, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return Secret{}, false, nil
	}
	if err := checkValue(v); err != nil {
		return Secret{}, true, errdefs.Invalidf("environment variable %s: %v", name, err)
	}
	return New(v), true, nil
}

func checkValue(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return errors.New("holds spaces or control characters")
		}
	}
	return nil
}
