package network

import (
	"fmt"
	"net/netip"
)

// MaxIfNameLen is the longest interface name Linux accepts (IFNAMSIZ-1).
const MaxIfNameLen = 15

// TAPPrefix starts the name of every TAP the daemon makes. The bridge-family
// rules match it, so a TAP of ours that the rules do not list (one left over,
// or made by hand) is dropped rather than trusted: fail closed.
const TAPPrefix = "agt"

// ValidateIfName checks an interface name before it is used in a rule or a
// netlink call (finding L-3): 1-15 bytes of [A-Za-z0-9_.-], not starting with
// '.' or '-'. Linux allows more; nothing agentiso names needs more, and a
// strict set keeps every name printable in logs and nft listings. field names
// the parameter in the error.
func ValidateIfName(field, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s: must not be empty", field)
	case len(s) > MaxIfNameLen:
		return fmt.Errorf("%s: %q is longer than %d bytes", field, s, MaxIfNameLen)
	case s[0] == '.' || s[0] == '-':
		return fmt.Errorf("%s: %q must not start with '.' or '-'", field, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%s: %q may contain only letters, digits, '_', '.' and '-'", field, s)
		}
	}
	return nil
}

// TAPName is the TAP device of the VM at ip: the prefix and the address in
// hex, so two VMs of one subnet never share a name and the name says whose
// it is.
func TAPName(ip netip.Addr) string {
	b := ip.As4()
	return fmt.Sprintf("%s%02x%02x%02x%02x", TAPPrefix, b[0], b[1], b[2], b[3])
}
