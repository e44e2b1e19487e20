package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// MaxFileBytes bounds the configuration file; a larger one is refused before
// it is parsed (finding L-15).
const MaxFileBytes = 1 << 20

// fileMode is the mode WriteDefault gives the file: root writes it, the
// agentiso group may read it.
const fileMode = 0o640

// Load reads, parses and validates the file at path. A missing file is a
// NotFound error that tells the reader to run `agentiso init`.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Config{}, errdefs.With(errdefs.NotFound,
				fmt.Sprintf("config file %s does not exist; run `agentiso init` to write a default one", path), err)
		}
		return Config{}, fmt.Errorf("opening config file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("reading config file %s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return Config{}, errdefs.Invalidf("config file %s: larger than %d bytes", path, MaxFileBytes)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration over Default and validates the result. Every
// error is Invalid and names the key, with its line where the decoder knows
// it.
func Parse(b []byte) (Config, error) {
	if len(b) > MaxFileBytes {
		return Config{}, errdefs.Invalidf("config: larger than %d bytes", MaxFileBytes)
	}
	// Finding L-11: a secret is refused wherever it is, and never echoed.
	if msgs := secretKeys(b); len(msgs) > 0 {
		return Config{}, errdefs.Invalidf("config: %s", strings.Join(msgs, "; "))
	}
	c := Default()
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, decodeError(err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// movedKeys are keys that an older config file may still hold, and the
// key each became.
var movedKeys = map[string]string{
	"dashboard.admin_token_file": "secrets.admin_token_file",
}

// goField matches the Go-specific part of go-toml's type errors, which names
// a struct field a reader of the file has never seen.
var goField = regexp.MustCompile(`into struct field \S+ of type (\S+)`)

// decodeError rewrites a go-toml error so it names keys as the file spells
// them, with the line.
func decodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		msgs := make([]string, 0, len(strict.Errors))
		for i := range strict.Errors {
			e := &strict.Errors[i]
			row, _ := e.Position()
			key := strings.Join(e.Key(), ".")
			msg := fmt.Sprintf("line %d: unknown key %s", row, key)
			if to, ok := movedKeys[key]; ok {
				msg += " (it is " + to + " now)"
			}
			msgs = append(msgs, msg)
		}
		return errdefs.Invalidf("config: %s", strings.Join(msgs, "; "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		msg = goField.ReplaceAllString(msg, "into a value of type $1")
		if k := de.Key(); len(k) > 0 {
			return errdefs.Invalidf("config: line %d, column %d: %s: %s", row, col, strings.Join(k, "."), msg)
		}
		return errdefs.Invalidf("config: line %d, column %d: %s", row, col, msg)
	}
	return errdefs.With(errdefs.Invalid, "config: "+strings.TrimPrefix(err.Error(), "toml: "), nil)
}

const defaultHeader = `# agentiso configuration.
#
# Every key is shown with its default value; delete a key to keep the default.
# Unknown keys are errors. Secrets never belong in this file: see [secrets].
`

// DefaultText returns the commented default configuration file.
func DefaultText() ([]byte, error) {
	body, err := toml.Marshal(Default())
	if err != nil {
		return nil, fmt.Errorf("encoding default config: %w", err)
	}
	return append([]byte(defaultHeader+"\n"), body...), nil
}

// WriteDefault writes the commented default configuration to path, mode 0640,
// creating its directory (0755) if needed. It never replaces an existing
// file: if one is there it returns a Conflict error that matches
// fs.ErrExist, and leaves the file untouched.
func WriteDefault(path string) error {
	text, err := DefaultText()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating config directory: %w", err)
	}
	// Write a temporary file and hard-link it into place: the link fails if
	// path exists, so an existing file is never overwritten, and a reader
	// never sees a half-written one.
	tmp, err := os.CreateTemp(dir, ".config-*.toml")
	if err != nil {
		return fmt.Errorf("creating temporary config file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(fileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("setting config file mode: %w", err)
	}
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing config file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing config file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errdefs.With(errdefs.Conflict, fmt.Sprintf("config file %s already exists; not overwriting it", path), fs.ErrExist)
		}
		return fmt.Errorf("installing config file: %w", err)
	}
	return nil
}
