// Package mcpshim is `agentiso mcp`: the stdio process an MCP client launches.
// It holds no state and makes no decisions: it connects to the daemon's Unix
// socket and copies bytes both ways. One shim process is one connection, and
// one connection is one MCP session whose identity the daemon assigns.
package mcpshim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// Run connects to the daemon at socketPath and relays stdin to it and its
// answers to stdout until the daemon closes the connection. When stdin ends,
// the shim half-closes the connection so the daemon can finish answering.
func Run(ctx context.Context, socketPath string, stdin io.Reader, stdout io.Writer) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return explainDial(socketPath, err)
	}
	uc := conn.(*net.UnixConn)
	defer uc.Close()

	go func() {
		<-ctx.Done()
		uc.Close()
	}()
	go func() {
		_, _ = io.Copy(uc, stdin)
		_ = uc.CloseWrite()
	}()
	_, err = io.Copy(stdout, uc)
	if err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("reading from the daemon: %w", err)
	}
	return nil
}

// explainDial turns a failed connect into advice a person can act on.
func explainDial(path string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("the agentiso daemon is not running (no socket at %s): start it with `systemctl start agentiso` or `agentiso daemon`", path)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("no permission to connect to %s: add your user to the agentiso group (`usermod -aG agentiso $USER`, then log in again)", path)
	}
	return fmt.Errorf("connecting to the daemon at %s: %w", path, err)
}
