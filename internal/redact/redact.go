// Package redact removes credentials from text before it leaves the daemon:
// tool results, tool errors and log lines (finding M-7). Git is where
// credentials most often travel through agentiso (https://user:token@ URLs,
// Authorization headers in http.extraheader, the answers of credential
// helpers and GIT_ASKPASS programs), but the patterns are not git-specific,
// so the daemon's log handler applies them to every line it writes.
//
// Patterns find credentials by their shape. A Scrubber also removes literal
// secrets the caller knows (the password of a URL it was given), which
// catches a credential git prints in a form no pattern recognises.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Mask replaces every credential.
const Mask = "[REDACTED]"

// rule is one credential shape: re matches it. When keep is set, the first
// submatch (a prefix such as "https://" or "Authorization: ") stays in
// place before the mask; suffix follows the mask.
type rule struct {
	re     *regexp.Regexp
	keep   bool
	suffix string
}

// rules are applied in order to every text. RE2 (Go's regexp) runs in time
// linear in the input, so no text can make redaction slow.
var rules = []rule{
	// The userinfo of a URL: https://user:token@host/, ssh://user@host.
	// It runs to the last '@' before the host part, so a password holding
	// an unescaped '@' is masked whole.
	{regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@'"<>]*(?:@[^\s/?#@'"<>]*)*@`), true, "@"},
	// http.extraheader values, whatever the header: everything after the
	// key to the end of the line.
	{regexp.MustCompile(`(?im)(extraheader\s*[=:]?\s*)[^\r\n]+`), true, ""},
	// Authorization headers, with or without a scheme word.
	{regexp.MustCompile(`(?i)\b((?:proxy-)?authorization\s*:\s*(?:(?:basic|bearer|token|digest|negotiate|ntlm)\s+)?)[^\s'"]+`), true, ""},
	// Token headers of GitLab and others.
	{regexp.MustCompile(`(?i)\b((?:private|job|deploy)-token\s*:\s*)[^\s'"]+`), true, ""},
	// A bearer token anywhere.
	{regexp.MustCompile(`(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}`), true, ""},
	// The credential helper protocol (and GIT_ASKPASS-style answers
	// relayed in it): password=, oauth_refresh_token=, credential= lines,
	// also as relayed by a remote ("remote: password=...").
	{regexp.MustCompile(`(?im)^((?:remote:\s*)?(?:password|passwd|oauth_refresh_token|credential)\s*=\s*)[^\r\n]+`), true, ""},
	// Secrets in URL query strings.
	{regexp.MustCompile(`(?i)([?&](?:access_token|private_token|oauth_token|token|password|passwd|secret|api_key|apikey|key)=)[^&\s#'"]+`), true, ""},
	// Tokens with a recognisable prefix: GitHub, GitLab, Slack, AWS access
	// keys, npm, Hugging Face, wherever they stand (even glued to other
	// text); OpenAI- and Anthropic-style keys, whose "sk-" prefix is less
	// distinctive, only as a word of their own.
	{regexp.MustCompile(`(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|gl(?:pat|ptt|dt|rt|cbt|oas|imt|ft|soat|agent)-[A-Za-z0-9_\-]{20,}|xox[abposr]-[A-Za-z0-9\-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}|npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{30,}|\bsk-[A-Za-z0-9_\-]{20,})`), false, ""},
}

// String returns s with every credential a pattern recognises masked.
func String(s string) string {
	for _, r := range rules {
		if !r.re.MatchString(s) {
			continue
		}
		s = r.re.ReplaceAllStringFunc(s, func(m string) string {
			if !r.keep {
				return Mask + r.suffix
			}
			return r.re.FindStringSubmatch(m)[1] + Mask + r.suffix
		})
	}
	return s
}

// minSecretLen is the shortest literal secret a Scrubber masks: shorter
// strings ("x", "git") are too common to mask everywhere, and are masked by
// the patterns where they stand in a URL.
const minSecretLen = 4

// Scrubber masks the credentials String recognises and, before them, the
// literal secrets it was given. The zero value masks by pattern only.
type Scrubber struct {
	secrets []string
}

// With returns a Scrubber that also masks secrets (those shorter than 4
// bytes are ignored). The receiver is not changed.
func (k Scrubber) With(secrets ...string) Scrubber {
	out := Scrubber{secrets: append([]string(nil), k.secrets...)}
	for _, s := range secrets {
		if len(s) >= minSecretLen {
			out.secrets = append(out.secrets, s)
		}
	}
	return out
}

// String returns s with the known secrets and every recognised credential
// masked.
func (k Scrubber) String(s string) string {
	for _, sec := range k.secrets {
		s = strings.ReplaceAll(s, sec, Mask)
	}
	return String(s)
}

// Error returns err with its text masked. The errdefs class and the public
// message (masked) are kept; the chain is flattened into text, so no
// wrapped error can later print an unmasked credential.
func (k Scrubber) Error(err error) error {
	if err == nil {
		return nil
	}
	var e *errdefs.Error
	if errors.As(err, &e) && e.Class != errdefs.Internal {
		return errdefs.With(e.Class, k.String(e.Msg), errors.New(k.String(err.Error())))
	}
	return errors.New(k.String(err.Error()))
}

// URLSecrets returns the secrets in a URL's userinfo, raw and unescaped:
// the password, or a user name that is all there is and long enough to be
// a token (https://TOKEN@host). A URL without userinfo has none.
func URLSecrets(raw string) []string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return nil
	}
	rest := raw[i+3:]
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		rest = rest[:j]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return nil
	}
	info := rest[:at]
	var secret string
	if user, pass, ok := strings.Cut(info, ":"); ok {
		secret = pass
	} else if len(user) >= 16 {
		secret = user
	}
	if secret == "" {
		return nil
	}
	out := []string{secret}
	if u, err := url.PathUnescape(secret); err == nil && u != secret {
		out = append(out, u)
	}
	return out
}
