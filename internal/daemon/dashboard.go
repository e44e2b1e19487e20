package daemon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/dashboard"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/mcpserver"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/workspace"
)

// newDashboard builds the dashboard and its API from the configuration.
// A dashboard that may not run (a non-loopback address without an admin
// token, finding H-1) stops the daemon from starting.
func (d *Daemon) newDashboard() (*dashboard.Server, error) {
	c := d.cfg.Dashboard
	token, source, path, err := dashboard.LoadToken(d.secrets.AdminToken, d.cfg.Server.DataDir, c.ListenLoopback())
	if err != nil {
		return nil, adminTokenError(err, d.secrets.AdminTokenFrom)
	}
	if source == dashboard.FromConfig {
		path = d.secrets.AdminTokenFrom
	}
	d.log.Info("dashboard admin token loaded", "source", source, "from", path)
	a, err := d.newAPI(api.NewStreamLimiter(c.MaxStreamsPerSession, c.MaxStreamsTotal), "dashboard")
	if err != nil {
		return nil, err
	}
	return dashboard.New(dashboard.Options{
		Listen: c.Listen, AllowedHosts: c.AllowedHosts,
		TLSCertFile: c.TLSCertFile, TLSKeyFile: c.TLSKeyFile,
		Token: token, SessionTTL: c.SessionTTL(),
		API: a, Sessions: forgettingStore{Store: d.store, forget: d.forgetSession}, Record: d.auditAPI,
		Logger: d.log.With("edge", "dashboard"),
	})
}

// newAPI builds the REST API for one edge (the dashboard, the CLI
// socket), each with its own stream caps.
func (d *Daemon) newAPI(streams *api.StreamLimiter, edge string) (*api.API, error) {
	var v api.Vault // stays a nil interface when the vault is disabled
	if d.vault != nil {
		// Notes of a task board keep the board's rules when a person
		// edits them, as when an agent does (the vault tool).
		v = d.teams.Board(d.vault)
	}
	var n api.Network // stays a nil interface when networking is off
	if d.cfg.Network.Enabled {
		n = d.manager
	}
	return api.New(api.Options{
		Workspaces: d.manager,
		Snapshots:  d.manager,
		Vault:      v,
		Teams:      d.teams,
		Network:    n,
		AuditLog:   d.store,
		Record:     d.auditAPI,
		Host:       d.hostStats,
		Exec: workspace.ExecLimits{
			DefaultTimeout: d.cfg.Exec.DefaultTimeout(), MaxTimeout: d.cfg.Exec.MaxTimeout(),
			DefaultMaxOutputBytes: d.cfg.Exec.DefaultMaxOutputBytes, MaxOutputBytes: d.cfg.Exec.MaxOutputBytes,
		},
		MaxFileReadBytes: maxFileReadBytes,
		Streams:          streams,
		Limiter:          d.limiter,
		Activity:         d.activity,
		Features: api.Features{Workspaces: true, Terminal: true, Snapshots: true, Vault: d.vault != nil, Pool: d.cfg.Pool.Enabled,
			Teams: true, Network: d.cfg.Network.Enabled},
		Logger: d.log.With("edge", edge),
	})
}

// forgetSession drops an ended session's rate-limit buckets and activity.
func (d *Daemon) forgetSession(id string) {
	d.limiter.Forget(id)
	d.activity.Forget(id)
}

// forgettingStore is the state store for the dashboard's logins: ending a
// login's session also forgets its limits and activity.
type forgettingStore struct {
	*state.Store
	forget func(id string)
}

func (s forgettingStore) EndSession(ctx context.Context, id string) error {
	s.forget(id)
	return s.Store.EndSession(ctx, id)
}

// auditAPI records one API or dashboard action in the audit log.
func (d *Daemon) auditAPI(ctx context.Context, r api.AuditRecord) {
	d.audit(ctx, mcpserver.AuditRecord{Caller: r.Caller, Tool: r.Action, Target: r.Target, Err: r.Err, Duration: r.Duration})
}

// hostStats reads the host metrics the dashboard charts.
func (d *Daemon) hostStats(ctx context.Context) (*api.HostStats, error) {
	hs := &api.HostStats{Time: time.Now().UTC(), MaxTotalVMs: d.cfg.VM.MaxTotalVMs}
	ws, err := d.store.ListWorkspaces(ctx, state.WorkspaceFilter{})
	if err != nil {
		return nil, err
	}
	hs.VMsTotal = len(ws)
	for _, w := range ws {
		if w.State == state.WorkspaceRunning {
			hs.VMsRunning++
			hs.VMMemoryMB += int64(w.MemoryMB)
		}
	}
	if mem, err := os.ReadFile("/proc/meminfo"); err == nil {
		hs.MemoryTotalBytes = meminfoBytes(mem, "MemTotal")
		hs.MemoryAvailableBytes = meminfoBytes(mem, "MemAvailable")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.cfg.Server.DataDir, &st); err == nil {
		hs.DiskTotalBytes = int64(st.Blocks) * st.Bsize
		hs.DiskFreeBytes = int64(st.Bavail) * st.Bsize
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(la)); len(f) > 0 {
			hs.Load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if d.cfg.Pool.Enabled {
		ready, target := d.manager.PoolStatus()
		hs.Pool = &api.PoolStats{Ready: ready, Target: target}
	}
	return hs, nil
}

// meminfoBytes returns a /proc/meminfo field ("MemTotal: 123 kB") in bytes.
func meminfoBytes(meminfo []byte, key string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != key {
			continue
		}
		var kb int64
		if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

// adminTokenError names where a refused configured token came from.
func adminTokenError(err error, from string) error {
	if from == "" {
		return err
	}
	return errdefs.With(errdefs.ClassOf(err), fmt.Sprintf("admin token from %s: %s", from, strings.TrimPrefix(errdefs.Public(err), "admin token: ")), err)
}

// checkDashboard reports whether the dashboard will start and with which
// token, and whether this binary carries its front end. Read-only: it
// never generates a token.
func checkDashboard(cfg config.Config) []CheckResult {
	c := cfg.Dashboard
	if !c.Enabled {
		return []CheckResult{{Name: "dashboard", Status: OK, Detail: "disabled (dashboard.enabled = false)"}}
	}
	var out []CheckResult
	secrets, err := cfg.LoadSecrets()
	switch {
	case err != nil:
		out = append(out, CheckResult{Name: "dashboard", Status: Fail, Detail: errdefs.Public(err),
			Fix: "put a token of 16+ characters in a root-owned 0600 file named by secrets.admin_token_file"})
	case secrets.AdminToken.IsZero() && c.ListenLoopback():
		out = append(out, CheckResult{Name: "dashboard", Status: OK,
			Detail: fmt.Sprintf("http://%s/ with the token in %s (generated at the first start)", c.Listen, filepath.Join(cfg.Server.DataDir, dashboard.GeneratedTokenFile))})
	default:
		// Read-only: with a configured token or a non-loopback address,
		// LoadToken generates nothing.
		if _, _, _, err := dashboard.LoadToken(secrets.AdminToken, cfg.Server.DataDir, c.ListenLoopback()); err != nil {
			out = append(out, CheckResult{Name: "dashboard", Status: Fail, Detail: errdefs.Public(adminTokenError(err, secrets.AdminTokenFrom)),
				Fix: "put a token of 16+ characters in a root-owned 0600 file named by secrets.admin_token_file"})
		} else {
			out = append(out, CheckResult{Name: "dashboard", Status: OK, Detail: fmt.Sprintf("%s with the admin token from %s", c.Listen, secrets.AdminTokenFrom)})
		}
	}
	if _, err := fs.Stat(dashboard.Assets(), "index.html"); err != nil {
		out = append(out, CheckResult{Name: "dashboard ui", Status: Warn, Detail: "this binary was built without the dashboard's front end (the REST API works)",
			Fix: "cd web && npm ci && npm run build, then rebuild agentiso (scripts/install.sh does both)"})
	} else {
		out = append(out, CheckResult{Name: "dashboard ui", Status: OK, Detail: "front end embedded"})
	}
	return out
}
