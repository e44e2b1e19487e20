package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
)

const value = "s3cr3t-t0ken-VALUE"

// TestL11_SecretIsRedacted: no formatting verb, logger or encoder shows a
// Secret's value, alone or inside a struct.
func TestL11_SecretIsRedacted(t *testing.T) {
	s := New(value)
	type holder struct {
		Name  string
		Token Secret
		Ptr   *Secret
	}
	h := holder{Name: "x", Token: s, Ptr: &s}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &s))
	}
	outs = append(outs, fmt.Sprint(s), fmt.Sprintln(h), s.String(), s.GoString())
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(newHandler(&buf)).Info("msg", "token", s, "holder", h, slog.Any("any", s))
		outs = append(outs, buf.String())
	}
	for _, o := range outs {
		if strings.Contains(o, value) || strings.Contains(o, fmt.Sprintf("%x", value)) {
			t.Errorf("output shows the secret: %s", o)
		}
	}
	if !strings.Contains(string(j), Redacted) {
		t.Errorf("JSON %s does not say %s", j, Redacted)
	}
	if s.Reveal() != value {
		t.Errorf("Reveal = %q", s.Reveal())
	}
	if !s.Equal(value) || s.Equal(value+"x") || s.Equal("") || New("").Equal("") {
		t.Error("Equal gives a wrong answer")
	}
	if New("").String() != "" || !New("").IsZero() || s.IsZero() {
		t.Error("zero Secret misreported")
	}
}

// TestL11_SecretFileMustBePrivate: a secret file is read only when no
// other user could have read it, and errors never show its content.
func TestL11_SecretFileMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", value+"\n", 0o600)
	s, err := ReadFile(good)
	if err != nil || s.Reveal() != value {
		t.Fatalf("ReadFile(0600) = %q, %v", s.Reveal(), err)
	}
	if s, err := ReadFile(write("ro", value, 0o400)); err != nil || s.Reveal() != value {
		t.Fatalf("ReadFile(0400) = %q, %v", s.Reveal(), err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path, want string
	}{
		{"world-readable", write("world", value, 0o644), "mode 0644 lets other users read it; chmod 0600"},
		{"group-readable", write("group", value, 0o640), "mode 0640"},
		{"symlink", link, "is a symlink"},
		{"missing", filepath.Join(dir, "nope"), "cannot be read"},
		{"empty", write("empty", "\n", 0o600), "is empty"},
		{"two lines", write("lines", value+"\nmore\n", 0o600), "spaces or control characters"},
		{"huge", write("huge", strings.Repeat("a", MaxFileBytes+1), 0o600), "larger than"},
		{"directory", dir, "not a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFile(tt.path)
			if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadFile = %v, want Invalid containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), value) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
	if os.Geteuid() == 0 {
		other := write("other", value, 0o600)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(other); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("ReadFile(owned by nobody) = %v, want an owner error", err)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("AGENTISO_TEST_SECRET", value)
	s, ok, err := FromEnv("AGENTISO_TEST_SECRET")
	if err != nil || !ok || s.Reveal() != value {
		t.Fatalf("FromEnv = %v, %v, %v", s, ok, err)
	}
	if _, ok, err := FromEnv("AGENTISO_TEST_SECRET_UNSET"); ok || err != nil {
		t.Fatalf("FromEnv(unset) = %v, %v", ok, err)
	}
	t.Setenv("AGENTISO_TEST_SECRET", "has space")
	if _, _, err := FromEnv("AGENTISO_TEST_SECRET"); err == nil || strings.Contains(err.Error(), "has space") {
		t.Fatalf("FromEnv(bad) = %v, want an error that does not echo the value", err)
	}
}
