package guest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// SysVirtioPorts is where the kernel lists virtio-serial ports, each with
// a name file. There is no udev in the guest, so no /dev/virtio-ports links.
const SysVirtioPorts = "/sys/class/virtio-ports"

// Backoff between sessions on the port. While no host is connected a read
// on the port returns 0 bytes at once, so each attempt ends immediately;
// the pause doubles up to maxRetryDelay and starts over after a session
// that carried requests.
const (
	minRetryDelay = 20 * time.Millisecond
	maxRetryDelay = 250 * time.Millisecond
)

// ServePort serves the host channel on the virtio-serial port named
// protocol.PortName, found in sysDir (SysVirtioPorts) with its device in
// devDir (/dev), until ctx is done. Each host connection is one session;
// when the host goes (a daemon restart), the port is closed and opened
// again for the next one.
func (a *Agent) ServePort(ctx context.Context, sysDir, devDir string) error {
	var delay time.Duration
	lastErr := ""
	for {
		served, err := a.servePortOnce(ctx, sysDir, devDir)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The same failure again and again (no port yet) is logged once.
		msg := ""
		if err != nil {
			msg = err.Error()
			if msg != lastErr {
				a.log.Warn("serving the host channel, retrying", "err", err)
			}
		}
		lastErr = msg
		if served > 0 {
			a.log.Info("host session ended", "requests", served)
			delay = 0
		}
		delay = min(max(2*delay, minRetryDelay), maxRetryDelay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// servePortOnce opens the port and serves one session on it.
func (a *Agent) servePortOnce(ctx context.Context, sysDir, devDir string) (int, error) {
	dev, err := findPort(sysDir, devDir, protocol.PortName)
	if err != nil {
		return 0, err
	}
	// Pollable: closing the file (when the session ends) wakes a read.
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("opening the channel port: %w", err)
	}
	return a.serve(ctx, f)
}

// findPort returns the device of the virtio-serial port called name.
func findPort(sysDir, devDir, name string) (string, error) {
	entries, err := os.ReadDir(sysDir)
	if err != nil {
		return "", fmt.Errorf("listing virtio-serial ports: %w", err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(sysDir, e.Name(), "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return filepath.Join(devDir, e.Name()), nil
		}
	}
	return "", errdefs.NotFoundf("no virtio-serial port named %s in %s", name, sysDir)
}
