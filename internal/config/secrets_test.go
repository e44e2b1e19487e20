package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// TestL11_ConfigRefusesSecrets: a secret written into the config file is
// refused, with a message that names the key and says where it belongs,
// and never echoes the value.
func TestL11_ConfigRefusesSecrets(t *testing.T) {
	const value = "hunter2-very-secret"
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"[server]\nadmin_token = \"" + value + "\"\n", []string{"server.admin_token: a secret does not belong in the config file", "secrets.admin_token_file", AdminTokenEnv}},
		{"[dashboard]\nadmin_token = \"" + value + "\"\n", []string{"dashboard.admin_token: a secret"}},
		{"[secrets]\nadmin_token = \"" + value + "\"\n", []string{"secrets.admin_token: a secret"}},
		{"[git]\npassword = \"" + value + "\"\n", []string{"git.password: a secret", "[secrets] section"}},
		{"api_key = \"" + value + "\"\n", []string{"api_key: a secret"}},
		{"[[hooks]]\nname = \"a\"\nsecret = \"" + value + "\"\n", []string{"hooks.secret: a secret"}},
		{"[vm]\nGITHUB_TOKEN = \"" + value + "\"\n", []string{"vm.GITHUB_TOKEN: a secret"}},
	} {
		_, err := Parse([]byte(tt.in))
		if !errdefs.Is(err, errdefs.Invalid) {
			t.Errorf("Parse(%q) = %v, want Invalid", tt.in, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%q) = %q, want it to contain %q", tt.in, err, w)
			}
		}
		if strings.Contains(err.Error(), value) {
			t.Errorf("Parse(%q) echoes the secret: %v", tt.in, err)
		}
	}
}

func TestSecretKeyNames(t *testing.T) {
	for key, isSecret := range map[string]bool{
		"admin_token": true, "GITHUB_TOKEN": true, "token": true, "password": true, "db_passwd": true,
		"secret": true, "client_secret": true, "api_key": true, "apikey": true, "credentials": true, "private_key": true,
		"admin_token_file": false, "tokens_per_minute": false, "token_bucket": false, "max_tokens": false,
		"secret_file": false, "stale_session_secs": false, "passwordless": false,
	} {
		if _, got := secretKeyHome([]string{"s", key}); got != isSecret {
			t.Errorf("%s: secret = %v, want %v", key, got, isSecret)
		}
	}
}

func TestLoadSecrets(t *testing.T) {
	const fromFile, fromEnv = "token-from-file", "token-from-env"
	path := filepath.Join(t.TempDir(), "admin_token")
	if err := os.WriteFile(path, []byte(fromFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	t.Setenv(AdminTokenEnv, "")
	os.Unsetenv(AdminTokenEnv)
	s, err := c.LoadSecrets()
	if err != nil || !s.AdminToken.IsZero() {
		t.Fatalf("no sources: %v, %v; want no token", s.AdminToken.Reveal(), err)
	}
	c.Secrets.AdminTokenFile = path
	if s, err = c.LoadSecrets(); err != nil || s.AdminToken.Reveal() != fromFile || s.AdminTokenFrom != path {
		t.Fatalf("from the file: %q from %q, %v", s.AdminToken.Reveal(), s.AdminTokenFrom, err)
	}
	t.Setenv(AdminTokenEnv, fromEnv)
	if s, err = c.LoadSecrets(); err != nil || s.AdminToken.Reveal() != fromEnv || s.AdminTokenFrom != "$"+AdminTokenEnv {
		t.Fatalf("environment over file: %q from %q, %v", s.AdminToken.Reveal(), s.AdminTokenFrom, err)
	}
	os.Unsetenv(AdminTokenEnv)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = c.LoadSecrets(); !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(err.Error(), "chmod 0600") {
		t.Fatalf("world-readable file: %v, want Invalid saying chmod 0600", err)
	}
}
