package gitops

import (
	"path"
	"regexp"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Bounds of the parameters.
const (
	maxPathBytes    = 4096
	maxURLBytes     = 4096
	maxRefBytes     = 255
	maxMessageBytes = 64 << 10
	maxIdentBytes   = 256
	maxDepth        = 1 << 20
)

// repoPath validates a repository path (field names the parameter) and
// applies the default.
func repoPath(field, p string) (string, error) {
	if p == "" {
		return DefaultPath, nil
	}
	if err := guestPath(field, p); err != nil {
		return "", err
	}
	return path.Clean(p), nil
}

// guestPath accepts an absolute guest path without control characters.
func guestPath(field, p string) error {
	switch {
	case p == "":
		return errdefs.Invalidf("%s: required", field)
	case len(p) > maxPathBytes:
		return errdefs.Invalidf("%s: longer than %d bytes", field, maxPathBytes)
	case !path.IsAbs(p):
		return errdefs.Invalidf("%s: must be an absolute path inside the workspace (e.g. /workspace/repo)", field)
	case hasControl(p):
		return errdefs.Invalidf("%s: must not contain control characters", field)
	}
	return nil
}

// hasControl reports whether s holds an ASCII control character (NUL and
// newlines included).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// checkRefName accepts what git check-ref-format accepts for one branch or
// remote name, and refuses a leading '-' so no name can be read as an
// option. field names the parameter.
func checkRefName(field, s string) error {
	switch {
	case s == "":
		return errdefs.Invalidf("%s: must not be empty", field)
	case len(s) > maxRefBytes:
		return errdefs.Invalidf("%s: longer than %d bytes", field, maxRefBytes)
	case s[0] == '-':
		return errdefs.Invalidf("%s: must not start with '-'", field)
	case s == "@", strings.Contains(s, ".."), strings.Contains(s, "@{"), strings.Contains(s, "//"),
		strings.HasPrefix(s, "/"), strings.HasSuffix(s, "/"), strings.HasSuffix(s, "."),
		strings.HasSuffix(s, ".lock"), strings.Contains(s, "/."), strings.HasPrefix(s, "."):
		return errdefs.Invalidf("%s: not a valid git ref name", field)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || strings.IndexByte("~^:?*[\\", c) >= 0 {
			return errdefs.Invalidf("%s: must not contain spaces, control characters or any of ~^:?*[\\", field)
		}
	}
	return nil
}

// remoteHelper matches what git reads as <transport>::<address>: a URL
// that makes git run the program git-remote-<transport> (ext:: runs any
// command). git's own rule: a scheme-like name directly followed by "::".
var remoteHelper = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.\-]*::`)

// allowedSchemes are the URL schemes git_clone accepts.
var allowedSchemes = []string{"https", "http", "ssh", "git", "file"}

// checkURL accepts a repository URL: scheme://... with an allowed scheme,
// an absolute path (a repository inside the workspace), or scp-like
// [user@]host:path. Remote-helper forms (ext::..., fd::...) and anything
// that could be read as an option are refused. The error never quotes the
// URL, which may hold a credential.
func checkURL(u string) error {
	switch {
	case u == "":
		return errdefs.Invalidf("url: required")
	case len(u) > maxURLBytes:
		return errdefs.Invalidf("url: longer than %d bytes", maxURLBytes)
	case u[0] == '-':
		return errdefs.Invalidf("url: must not start with '-'")
	case hasControl(u) || strings.ContainsRune(u, ' '):
		return errdefs.Invalidf("url: must not contain spaces or control characters")
	}
	if remoteHelper.MatchString(u) {
		return errdefs.Invalidf("url: remote-helper forms (<transport>::<address>) are not allowed")
	}
	if scheme, _, ok := strings.Cut(u, "://"); ok && !strings.ContainsAny(scheme, "/@:") {
		for _, a := range allowedSchemes {
			if strings.EqualFold(scheme, a) {
				return nil
			}
		}
		return errdefs.Invalidf("url: scheme must be one of %s", strings.Join(allowedSchemes, ", "))
	}
	if u[0] == '/' {
		return nil
	}
	// scp-like: a host part before the first ':' that comes before any '/'.
	colon := strings.IndexByte(u, ':')
	slash := strings.IndexByte(u, '/')
	if colon > 0 && (slash < 0 || colon < slash) {
		return nil
	}
	return errdefs.Invalidf("url: must be an https://, http://, ssh://, git:// or file:// URL, user@host:path, or an absolute path")
}

// checkIdent accepts an author name or e-mail address.
func checkIdent(field, s string) error {
	switch {
	case len(s) > maxIdentBytes:
		return errdefs.Invalidf("%s: longer than %d bytes", field, maxIdentBytes)
	case hasControl(s) || strings.ContainsAny(s, "<>"):
		return errdefs.Invalidf("%s: must not contain '<', '>' or control characters", field)
	}
	return nil
}

// checkPathspec accepts a file path for git_diff: relative to the
// repository or absolute, no control characters. It is passed after "--".
func checkPathspec(field, s string) error {
	switch {
	case len(s) > maxPathBytes:
		return errdefs.Invalidf("%s: longer than %d bytes", field, maxPathBytes)
	case strings.IndexByte(s, 0) >= 0 || strings.ContainsAny(s, "\n\r"):
		return errdefs.Invalidf("%s: must not contain NUL or newlines", field)
	}
	return nil
}

// CheckURL is the URL check of git_clone for other callers (workspace_prepare's
// git_url): the same rules, with the error naming field instead of url.
func CheckURL(field, u string) error {
	err := checkURL(u)
	if err == nil || field == "url" {
		return err
	}
	return errdefs.With(errdefs.ClassOf(err), field+strings.TrimPrefix(errdefs.Public(err), "url"), err)
}
