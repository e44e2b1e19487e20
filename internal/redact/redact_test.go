package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
)

const ghToken = "ghp_0123456789abcdefghijABCDEFGHIJ012345"

// TestM7_RedactCredentialForms covers every credential form M-7 names: URL
// userinfo (clone and push URLs), Authorization headers in
// http.extraheader, credential-helper and GIT_ASKPASS answers, and tokens
// with a known prefix. secret must be gone from the output; keep must
// still be there (redaction does not eat the text around it).
func TestM7_RedactCredentialForms(t *testing.T) {
	tests := []struct {
		name, in, secret, keep string
	}{
		{"https user:token", "fatal: unable to access 'https://alice:s3cretTok@git.example.com/r.git/': 403",
			"s3cretTok", "https://" + Mask + "@git.example.com/r.git/"},
		{"token as user", "Cloning https://" + ghToken + "@github.com/o/r.git", ghToken, "@github.com/o/r.git"},
		{"x-access-token", "remote: https://x-access-token:ghs_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r",
			"ghs_abcdefghijklmnopqrstuvwxyz0123", "@github.com/o/r"},
		{"password with @", "To https://bob:p@ss@word1@host.example/r.git", "ss@word1", Mask + "@host.example/r.git"},
		{"percent-encoded", "https://bob:p%40ssw0rd@host/r", "p%40ssw0rd", "@host/r"},
		{"ssh url", "ssh://deploy:hunter22@host:2222/r.git", "hunter22", "@host:2222/r.git"},
		{"two urls on a line", "https://a:tok1aaaa@h1/ and http://b:tok2bbbb@h2/", "tok1aaaa", " and http://"},
		{"second of two urls", "https://a:tok1aaaa@h1/ and http://b:tok2bbbb@h2/", "tok2bbbb", "@h2/"},
		{"extraheader config", "http.https://github.com/.extraheader=AUTHORIZATION: basic eC1hY2Nlc3M6c2VjcmV0",
			"eC1hY2Nlc3M6c2VjcmV0", "extraheader="},
		{"extraheader any header", "http.extraHeader X-Api-Key: zz-top-secret-9", "zz-top-secret-9", "extraHeader"},
		{"authorization basic", "> Authorization: Basic dXNlcjpzZWNyZXRwYXNz", "dXNlcjpzZWNyZXRwYXNz", "Authorization: Basic " + Mask},
		{"authorization bearer", "authorization: bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9", "authorization: bearer"},
		{"authorization bare", "Authorization: tok-abcdef123", "tok-abcdef123", "Authorization: " + Mask},
		{"bearer alone", "header was Bearer abcdefgh12345678", "abcdefgh12345678", "header was"},
		{"gitlab private-token", "PRIVATE-TOKEN: abcdEFGH1234", "abcdEFGH1234", "PRIVATE-TOKEN: "},
		{"credential helper answer", "protocol=https\nhost=github.com\nusername=bob\npassword=correct-horse\n",
			"correct-horse", "username=bob"},
		{"askpass relayed by remote", "remote: password=battery-staple\nremote: done", "battery-staple", "remote: done"},
		{"oauth refresh", "oauth_refresh_token=rt-123456789", "rt-123456789", "oauth_refresh_token="},
		{"query token", "GET https://api.example/r.git?access_token=qqq111www&x=1", "qqq111www", "&x=1"},
		{"github pat", "using " + ghToken + " now", ghToken, "using " + Mask + " now"},
		{"fine-grained pat", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_pat_11ABCDEFG0123456789", ""},
		{"gitlab pat", "token glpat-abcdefghij0123456789 here", "glpat-abcdefghij0123456789", " here"},
		{"gitlab deploy", "gldt-abcdefghijklmnopqrstuvwx", "gldt-abcdefghijklmnopqrstuvwx", ""},
		{"slack", "xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij", ""},
		{"aws key", "AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP", ""},
		{"glued to text", "tok=x" + ghToken + "y", ghToken[:12], "tok=x"},
		{"openai-style key", "key sk-abcdefghijklmnopqrstuvwx", "sk-abcdefghijklmnopqrstuvwx", "key "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := String(tt.in)
			if strings.Contains(got, tt.secret) {
				t.Errorf("String(%q) = %q: still holds %q", tt.in, got, tt.secret)
			}
			if !strings.Contains(got, tt.keep) {
				t.Errorf("String(%q) = %q: lost %q", tt.in, got, tt.keep)
			}
			if again := String(got); again != got {
				t.Errorf("String is not idempotent: %q then %q", got, again)
			}
		})
	}
}

// TestRedactLeavesOrdinaryTextAlone: nothing that merely looks like git
// output is masked.
func TestRedactLeavesOrdinaryTextAlone(t *testing.T) {
	for _, s := range []string{
		"To /srv/origin.git\n * [new branch]      main -> main",
		"Cloning into '/workspace/r'...",
		"git@github.com:org/repo.git", // scp-like: the user is not a secret
		"diff --git a/f b/f\n+password = os.Getenv(\"PW\")",
		"basic settings changed; bearer of bad news",
		"ghp_short",
		"risk-assessment-for-the-whole-project",
		"e-mail: bob@example.com",
		"",
	} {
		if got := String(s); got != s {
			t.Errorf("String(%q) = %q, want it unchanged", s, got)
		}
	}
}

func TestScrubberLiteralSecrets(t *testing.T) {
	k := Scrubber{}.With("plain-secret-value", "abc") // "abc" is too short to mask
	got := k.String("the helper said plain-secret-value; abc stays")
	if strings.Contains(got, "plain-secret-value") || !strings.Contains(got, "abc stays") {
		t.Fatalf("got %q", got)
	}
	// With does not change its receiver.
	if (Scrubber{}).String("plain-secret-value") != "plain-secret-value" {
		t.Fatal("the zero Scrubber masked a literal it was never given")
	}
}

func TestScrubberErrorKeepsClassAndMasksChain(t *testing.T) {
	cause := fmt.Errorf("exec: %w", errors.New("https://u:tok-in-cause@h/r"))
	err := errdefs.With(errdefs.Unavailable, "git clone of https://u:tok-in-msg@h/r failed", cause)
	got := Scrubber{}.Error(err)
	if errdefs.ClassOf(got) != errdefs.Unavailable {
		t.Errorf("class = %v, want unavailable", errdefs.ClassOf(got))
	}
	for _, s := range []string{got.Error(), errdefs.Public(got)} {
		if strings.Contains(s, "tok-in") {
			t.Errorf("error text %q holds a secret", s)
		}
	}
	plain := Scrubber{}.Error(errors.New("Authorization: Bearer abcdefgh12345678"))
	if strings.Contains(plain.Error(), "abcdefgh12345678") {
		t.Errorf("unclassified error kept its secret: %q", plain)
	}
	if (Scrubber{}).Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
}

func TestURLSecrets(t *testing.T) {
	tests := []struct {
		url  string
		want []string
	}{
		{"https://alice:s3cret@h/r", []string{"s3cret"}},
		{"https://alice:p%40ss%2Fword@h/r", []string{"p%40ss%2Fword", "p@ss/word"}},
		{"https://" + ghToken + "@github.com/o/r", []string{ghToken}},
		{"ssh://git@github.com/o/r", nil},
		{"https://github.com/o/r", nil},
		{"git@github.com:o/r.git", nil},
		{"/srv/origin.git", nil},
	}
	for _, tt := range tests {
		got := URLSecrets(tt.url)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("URLSecrets(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

// TestM7_LogHandlerMasksEveryLine: message, string, error, Stringer and
// grouped attributes, and attributes attached with With, all pass the
// patterns before the daemon's log handler writes them.
func TestM7_LogHandlerMasksEveryLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log = log.With("remote", "https://u:with-attr-secret@h/r")
	log.Debug("cloning https://u:msg-secret@h/r",
		"err", errors.New("fatal: Authorization: Bearer err-secret-123456"),
		"url", "https://u:string-secret@h/r",
		"stringer", stringer("token "+ghToken),
		slog.Group("g", "inner", "password=group-secret"),
		"n", 42)
	out := buf.String()
	for _, s := range []string{"with-attr-secret", "msg-secret", "err-secret-123456", "string-secret", ghToken, "group-secret"} {
		if strings.Contains(out, s) {
			t.Errorf("log line holds %q:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "n=42") || !strings.Contains(out, "@h/r") {
		t.Errorf("log line lost its ordinary content:\n%s", out)
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

// FuzzURLPasswordMasked: a password placed in a URL's userinfo is gone
// from the output, whatever text surrounds it.
func FuzzURLPasswordMasked(f *testing.F) {
	f.Add("fatal: unable to access '", "s3cret-Value", "/r.git/': 403")
	f.Add("", "p@ss", "")
	f.Fuzz(func(t *testing.T, before, pass, after string) {
		// Characters a URL cannot hold unescaped (git refuses them too).
		if len(pass) < 8 || strings.ContainsAny(pass, " /?#'\"<>") || strings.ContainsFunc(pass, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return
		}
		if strings.ContainsAny(before+after, "\n") {
			return
		}
		in := before + " https://user:" + pass + "@host.example" + "/" + after
		if got := String(in); strings.Contains(got, "user:"+pass) {
			t.Fatalf("String(%q) = %q", in, got)
		}
	})
}
