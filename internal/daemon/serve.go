package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/mcpserver"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/workspace"
)

// maxMCPMessage bounds one JSON-RPC message from a client; a longer one ends
// that connection (and only that one) before it is buffered whole.
const maxMCPMessage = 32 << 20

// Serve listens on the configured Unix socket and serves one MCP session per
// connection until ctx ends. VMs keep running after Serve returns.
func (d *Daemon) Serve(ctx context.Context) error {
	ln, err := listenUnix(d.cfg.Server.SocketPath, d.cfg.Server.SocketGroup)
	if err != nil {
		return err
	}
	d.log.Info("serving MCP", "socket", d.cfg.Server.SocketPath)
	if err := endPreviousSessions(ctx, d.store, d.log); err != nil {
		ln.Close()
		return err
	}

	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		ln.Close()
		wg.Wait()
	}()
	if d.cfg.API.Enabled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.serveAPISocket(ctx); err != nil {
				d.log.Error("REST API socket not served", "err", err)
			}
		}()
	}
	if d.dash != nil {
		// The dashboard is a convenience for people; agents keep their
		// MCP socket even when its port is taken.
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.dash.Serve(ctx); err != nil {
				d.log.Error("dashboard not served", "err", err)
			}
		}()
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	wg.Go(func() { d.activity.Run(ctx) })
	// A bound on connections, so a burst of clients cannot exhaust the
	// daemon's file descriptors (finding M-22).
	maxConnections := d.cfg.Limits.MaxConnections
	slots := make(chan struct{}, maxConnections)
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return errServerClosed
			}
			d.log.Warn("accepting connection", "err", err)
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			d.log.Warn("refusing connection: too many open sessions", "max", maxConnections)
			conn.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			d.serveConn(ctx, conn)
		}()
	}
}

// serveConn runs one MCP session. Its identity is made here, from a random
// ID and the peer's credentials; nothing the client sends can choose it
// (finding M-8).
func (d *Daemon) serveConn(ctx context.Context, conn *net.UnixConn) {
	defer conn.Close()
	uid, pid := peerCred(conn)
	if uid < 0 {
		d.log.Warn("refusing connection: peer credentials unavailable")
		return
	}
	// The store assigns a random (UUIDv4) session ID.
	sess, err := d.store.CreateSession(ctx, state.Session{UID: uid, PID: pid, Transport: "stdio"})
	if err != nil {
		d.log.Error("creating session", "err", err)
		return
	}
	log := d.log.With("session", sess.ID)
	log.Info("session started", "uid", uid, "pid", pid)
	defer func() {
		if err := d.store.EndSession(context.WithoutCancel(ctx), sess.ID); err != nil {
			log.Error("ending session", "err", err)
		}
		d.limiter.Forget(sess.ID)
		d.activity.Forget(sess.ID)
		log.Info("session ended")
	}()

	caller := workspace.Caller{SessionID: sess.ID, UID: uid, Actor: "mcp"}
	server := mcpserver.NewServer(d.mcpDeps, caller)
	ss, err := server.Connect(ctx, &mcp.IOTransport{Reader: conn, Writer: conn, MaxLineLength: maxMCPMessage}, nil)
	if err != nil {
		log.Warn("starting MCP session", "err", err)
		return
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			ss.Close()
		case <-done:
		}
	}()
	_ = ss.Wait()
	close(done)
}

// listenUnix creates the daemon socket: a stale socket file from a dead
// daemon is replaced, a live one is an error; the socket is 0660 and owned by
// group (when set), so members of that group may connect.
func listenUnix(path, group string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("another daemon is already serving on %s", path)
	}
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket group %q: %w (create it with `groupadd --system %s`)", group, err, group)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	if err := os.Chown(path, 0, gid); err != nil && !errors.Is(err, syscall.EPERM) {
		ln.Close()
		return nil, fmt.Errorf("setting socket owner: %w", err)
	}
	mode := os.FileMode(0o660)
	if gid < 0 {
		mode = 0o600
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting socket mode: %w", err)
	}
	return ln, nil
}

// peerCred returns the connecting process's uid and pid (SO_PEERCRED), or
// -1s when the kernel does not say.
func peerCred(conn *net.UnixConn) (uid, pid int) {
	uid, pid = -1, -1
	raw, err := conn.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err == nil {
			uid, pid = int(cred.Uid), int(cred.Pid)
		}
	})
	return
}
