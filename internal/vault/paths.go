package vault

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Limits on a vault path as a caller writes it.
const (
	// MaxPathBytes bounds a whole vault path.
	MaxPathBytes = 1024
	// maxComponentBytes is the longest file name Linux file systems accept.
	maxComponentBytes = 255
)

// CleanPath checks a vault path as a caller wrote it and returns its
// canonical form: slash-separated, relative to the vault root, without "."
// or empty components. The empty path (and ".") is the vault root, which
// only callers that name a folder accept (allowRoot). field names the
// parameter in errors.
//
// This is the first of two fences: it refuses what is wrong on its face
// (absolute paths, "..", hidden names, control characters) with a message
// that says so. The second is os.Root, which refuses at open time any path,
// symbolic links included, that would leave the vault.
func CleanPath(field, p string, allowRoot bool) (string, error) {
	if len(p) > MaxPathBytes {
		return "", errdefs.Invalidf("%s: longer than %d bytes", field, MaxPathBytes)
	}
	if !utf8.ValidString(p) {
		return "", errdefs.Invalidf("%s: not valid UTF-8", field)
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return "", errdefs.Invalidf("%s: must not contain control characters", field)
		}
	}
	if strings.HasPrefix(p, "/") {
		return "", errdefs.Invalidf("%s: must be relative to the vault root, not an absolute path", field)
	}
	var parts []string
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			return "", errdefs.Invalidf("%s: must not contain '..'", field)
		case strings.HasPrefix(c, "."):
			return "", errdefs.Invalidf("%s: hidden names (starting with '.') are not part of the vault", field)
		case len(c) > maxComponentBytes:
			return "", errdefs.Invalidf("%s: a name in the path is longer than %d bytes", field, maxComponentBytes)
		}
		parts = append(parts, c)
	}
	if len(parts) == 0 {
		if allowRoot {
			return ".", nil
		}
		return "", errdefs.Invalidf("%s: must name a note, not the vault root", field)
	}
	return strings.Join(parts, "/"), nil
}

// errEscapeText is the text of os.Root's (unexported) error for a path that
// would leave the root. TestSymlinkOutsideRefused fails if Go changes it.
const errEscapeText = "path escapes from parent"

// isEscape reports whether err is os.Root refusing a path that leaves the
// root, through "..", an absolute name or a symbolic link.
func isEscape(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == errEscapeText
}

// fsError classifies a file system error about the vault path p, given by
// the parameter field. The public message names the field and the path the
// caller gave; the host path stays in the internal cause.
func fsError(field, p string, err error) error {
	var (
		class errdefs.Class
		msg   string
	)
	switch {
	case isEscape(err):
		class, msg = errdefs.PermissionDenied, "leads outside the vault (through a symbolic link)"
	case errors.Is(err, fs.ErrNotExist):
		class, msg = errdefs.NotFound, "does not exist"
	case errors.Is(err, fs.ErrExist):
		class, msg = errdefs.Conflict, "already exists"
	case errors.Is(err, syscall.ELOOP):
		class, msg = errdefs.Invalid, "has too many levels of symbolic links"
	case errors.Is(err, syscall.ENOTDIR):
		class, msg = errdefs.Invalid, "has a parent that is not a folder"
	case errors.Is(err, syscall.EISDIR):
		class, msg = errdefs.Invalid, "is a folder"
	case errors.Is(err, syscall.ENOTEMPTY):
		class, msg = errdefs.Conflict, "is a folder that is not empty"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		class, msg = errdefs.Unavailable, "cannot be written: the host file system is full"
	case errors.Is(err, fs.ErrPermission):
		class, msg = errdefs.PermissionDenied, "is not accessible to the daemon"
	default:
		return fmt.Errorf("vault %s: %w", p, err)
	}
	return errdefs.With(class, fmt.Sprintf("%s: %s %s", field, p, msg), err)
}
