package guest

import (
	"context"
	"errors"
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

// Pauses of the port loop. While no host is connected a read on the port
// returns 0 bytes at once; the pause between reads doubles up to
// maxRetryDelay and starts over after a session. Reopening a port that
// failed waits maxRetryDelay.
const (
	minRetryDelay = 20 * time.Millisecond
	maxRetryDelay = 250 * time.Millisecond
)

// ServePort serves the host channel on the virtio-serial port named
// protocol.PortName, found in sysDir (SysVirtioPorts) with its device in
// devDir (/dev), until ctx is done. The port stays open across sessions:
// closing it would discard what a reconnecting host has already sent.
func (a *Agent) ServePort(ctx context.Context, sysDir, devDir string) error {
	lastErr := ""
	for {
		err := a.servePortOnce(ctx, sysDir, devDir)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The same failure again and again (no port yet) is logged once.
		if msg := err.Error(); msg != lastErr {
			a.log.Warn("serving the host channel, retrying", "err", err)
			lastErr = msg
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(maxRetryDelay):
		}
	}
}

// servePortOnce opens the port and serves sessions on it until it fails.
func (a *Agent) servePortOnce(ctx context.Context, sysDir, devDir string) error {
	dev, err := findPort(sysDir, devDir, protocol.PortName)
	if err != nil {
		return err
	}
	// Pollable, so deadlines work on it.
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening the channel port: %w", err)
	}
	defer f.Close()
	if err := f.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("channel port %s: %w", dev, err)
	}
	err = a.serveSessions(ctx, f, true)
	if err == nil {
		err = errors.New("the channel port ended")
	}
	return err
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
