// Package names is the one validator for names that agents choose: workspace,
// snapshot, team and member names. A name that passes is safe to use in a
// path component, a hostname-derived label, a database key and a log line.
package names

import (
	"fmt"
)

// MaxLen is the longest name accepted.
const MaxLen = 128

// Validate checks that s is 1-128 characters of [A-Za-z0-9._-], does not
// start with '.' or '-', and is not "." or "..". field names the parameter in
// the error, so the caller learns which input was wrong.
func Validate(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s: must not be empty", field)
	}
	if len(s) > MaxLen {
		return fmt.Errorf("%s: longer than %d characters", field, MaxLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%s: only letters, digits, '.', '_' and '-' are allowed", field)
		}
	}
	if s[0] == '.' || s[0] == '-' {
		return fmt.Errorf("%s: must not start with '.' or '-'", field)
	}
	return nil
}
