package config

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/agentiso/agentiso/internal/secret"
)

// AdminTokenEnv is the environment variable that holds the dashboard admin
// token; it wins over secrets.admin_token_file. It and that key are the
// only two ways to give the token: the dashboard takes it from
// LoadSecrets, never from the environment itself (which the daemon clears).
const AdminTokenEnv = "AGENTISO_ADMIN_TOKEN"

// SecretEnvVars are the environment variables secrets are read from. The
// daemon removes them from its environment once read, so no program it
// starts (QEMU, qemu-img) inherits them.
var SecretEnvVars = []string{AdminTokenEnv}

// LoadedSecrets are the secrets the daemon holds, loaded by LoadSecrets.
type LoadedSecrets struct {
	// AdminToken guards the dashboard; zero when none is configured.
	AdminToken secret.Secret
	// AdminTokenFrom says where AdminToken came from, for the log and
	// `agentiso check`: "$AGENTISO_ADMIN_TOKEN", the file's path, or "".
	AdminTokenFrom string
}

// LoadSecrets reads each secret from its environment variable or, if that
// is unset, from its file (secret.ReadFile: mode 0600, owned by this user).
// A secret with neither is zero. A file that is not private is an error.
func (c Config) LoadSecrets() (LoadedSecrets, error) {
	var s LoadedSecrets
	var err error
	s.AdminToken, s.AdminTokenFrom, err = loadSecret(AdminTokenEnv, c.Secrets.AdminTokenFile)
	return s, err
}

// loadSecret reads one secret and says where from.
func loadSecret(env, file string) (secret.Secret, string, error) {
	v, ok, err := secret.FromEnv(env)
	if ok || err != nil {
		return v, "$" + env, err
	}
	if file == "" {
		return secret.Secret{}, "", nil
	}
	v, err = secret.ReadFile(file)
	return v, file, err
}

// secretKey matches key names that hold secrets (admin_token, password,
// GITHUB_TOKEN), not those that only mention one (admin_token_file,
// tokens_per_minute).
var secretKey = regexp.MustCompile(`(?i)(^|_)(token|passw(or)?d|passphrase|secret|api_?key|credentials?|private_?key)$`)

// secretKeys returns every key in the TOML document b, at any depth and in
// any table (known or not), whose name says it holds a secret, with the
// message for it. A document that does not parse has none: the strict
// decoder reports its syntax.
func secretKeys(b []byte) []string {
	var doc map[string]any
	if toml.Unmarshal(b, &doc) != nil {
		return nil
	}
	var msgs []string
	var walk func(prefix []string, v any)
	walk = func(prefix []string, v any) {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				key := append(append([]string(nil), prefix...), k)
				if _, table := v[k].(map[string]any); !table {
					if msg, ok := secretKeyHome(key); ok {
						msgs = append(msgs, msg)
						continue
					}
				}
				walk(key, v[k])
			}
		case []any:
			for _, e := range v {
				walk(prefix, e)
			}
		}
	}
	walk(nil, doc)
	return msgs
}

// secretKeyHome says where a secret that was put in the config file
// belongs instead.
func secretKeyHome(key []string) (string, bool) {
	last := key[len(key)-1]
	if !secretKey.MatchString(last) {
		return "", false
	}
	where := "in a file of its own (mode 0600, owned by root) named in the [secrets] section, or in the environment"
	if strings.EqualFold(last, "admin_token") {
		where = fmt.Sprintf("in a file of its own (mode 0600, owned by root) named by secrets.admin_token_file, or in $%s", AdminTokenEnv)
	}
	return fmt.Sprintf("%s: a secret does not belong in the config file, which other users may read; put it %s", strings.Join(key, "."), where), true
}
