package guest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/agentiso/agentiso/internal/protocol"
)

// hostsSelfAddr is the address Debian maps the machine's own name to in
// /etc/hosts.
const hostsSelfAddr = "127.0.1.1"

// defaultHosts starts an /etc/hosts that did not exist.
const defaultHosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

// configure applies the identity the host gives this VM (a claimed warm
// VM, a fork, a restored snapshot).
func (a *Agent) configure(m *protocol.Configure) error {
	if m.Hostname != "" {
		if err := a.setHostname(m.Hostname); err != nil {
			return err
		}
	}
	if m.Network != nil {
		return a.configureNetwork(m.Network)
	}
	return nil
}

// setHostname sets the kernel's hostname and the files that name it.
func (a *Agent) setHostname(name string) error {
	m := struct{ Hostname string }{name}
	if err := a.opts.SetHostname(m.Hostname); err != nil {
		return fmt.Errorf("setting the hostname: %w", err)
	}
	hostnameFile := filepath.Join(a.opts.EtcDir, "hostname")
	if err := writeFileAtomic(hostnameFile, []byte(m.Hostname+"\n")); err != nil {
		return err
	}
	hostsFile := filepath.Join(a.opts.EtcDir, "hosts")
	old, err := os.ReadFile(hostsFile)
	if errors.Is(err, fs.ErrNotExist) {
		old, err = []byte(defaultHosts), nil
	}
	if err != nil {
		return fsError("reading", hostsFile, err)
	}
	return writeFileAtomic(hostsFile, setHostsName(old, m.Hostname))
}

// setHostsName returns hosts with the machine's own line (127.0.1.1)
// naming host, and every other line as it was.
func setHostsName(hosts []byte, host string) []byte {
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter(hosts, []byte("\n")) {
		fields := bytes.Fields(line)
		if len(fields) > 0 && string(fields[0]) == hostsSelfAddr {
			continue
		}
		out.Write(line)
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	fmt.Fprintf(&out, "%s\t%s\n", hostsSelfAddr, host)
	return out.Bytes()
}

// writeFileAtomic replaces p with b, keeping p's mode (0644 if new).
func writeFileAtomic(p string, b []byte) error {
	return writeAtomic(p, replacementMode(p, 0), func(f *os.File) error {
		if _, err := f.Write(b); err != nil {
			return fsError("writing", p, err)
		}
		return nil
	})
}
