package protocol

import (
	"fmt"
	"sort"
	"strings"
)

// MaxEnvVars bounds how many variables one request may set.
const MaxEnvVars = 256

// MaxEnvValueBytes bounds one variable's value.
const MaxEnvValueBytes = 32 << 10

// blockedEnv are names that change how the dynamic loader, the shell or name
// resolution behave for every program a command starts. They are refused from
// every source of environment: per-call env, set_env and task assignments
// (M-9, L-9). Prefixes end in '*'.
var blockedEnv = []string{
	"LD_*", "BASH_ENV", "ENV", "BASH_FUNC_*", "SHELLOPTS", "BASHOPTS", "PS4",
	"PROMPT_COMMAND", "IFS", "GCONV_PATH", "HOSTALIASES", "LOCALDOMAIN",
	"RES_OPTIONS", "NLSPATH", "MALLOC_*", "GLIBC_TUNABLES", "PYTHONSTARTUP",
	"PERL5OPT", "NODE_OPTIONS",
}

// EnvBlocked reports whether name is on the environment blocklist.
func EnvBlocked(name string) bool {
	for _, b := range blockedEnv {
		if p, ok := strings.CutSuffix(b, "*"); ok {
			if strings.HasPrefix(name, p) {
				return true
			}
		} else if name == b {
			return true
		}
	}
	return false
}

// CheckEnv validates a set of environment variables: names are
// [A-Za-z_][A-Za-z0-9_]*, none blocklisted, values bounded and free of NUL.
// The error names the first offending variable (in sorted order, so the
// answer is stable).
func CheckEnv(env map[string]string) error {
	if len(env) > MaxEnvVars {
		return fmt.Errorf("env: at most %d variables", MaxEnvVars)
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !validEnvName(k) {
			return fmt.Errorf("env: %q is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*, at most 128)", k)
		}
		if EnvBlocked(k) {
			return fmt.Errorf("env: %s is blocked (it changes how every program is loaded or run)", k)
		}
		v := env[k]
		if len(v) > MaxEnvValueBytes {
			return fmt.Errorf("env: value of %s is longer than %d bytes", k, MaxEnvValueBytes)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("env: value of %s contains NUL", k)
		}
	}
	return nil
}

func validEnvName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
