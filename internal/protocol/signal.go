package protocol

import (
	"fmt"
	"strconv"
	"strings"
)

// signals are the signals the host may send to a command's process group,
// with their numbers on Linux (x86-64 and arm64 agree on these).
var signals = []struct {
	name string
	num  int
}{
	{"SIGHUP", 1}, {"SIGINT", 2}, {"SIGQUIT", 3}, {"SIGKILL", 9},
	{"SIGUSR1", 10}, {"SIGUSR2", 12}, {"SIGTERM", 15},
}

// signalList is the allowed signals as an error message lists them.
func signalList() string {
	var b strings.Builder
	for i, s := range signals {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%d)", s.name, s.num)
	}
	return b.String()
}

// checkSignal accepts the canonical name of an allowed signal.
func checkSignal(name string) error {
	for _, s := range signals {
		if s.name == name {
			return nil
		}
	}
	return fmt.Errorf("signal: must be one of %s", signalList())
}

// ParseSignal reads a signal the way agents and people write it: a name
// with or without "SIG" in any case ("SIGTERM", "term") or its number
// ("15"). It returns the canonical name that travels on the wire. The
// original agentiso took numbers, so both must work.
func ParseSignal(s string) (string, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		for _, sig := range signals {
			if sig.num == n {
				return sig.name, nil
			}
		}
		return "", fmt.Errorf("signal: %d is not one of %s", n, signalList())
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if err := checkSignal(name); err != nil {
		return "", err
	}
	return name, nil
}
