// Package install puts agentiso on a host and takes it off again: the
// binaries, the systemd unit, the group whose members may use the daemon,
// the default configuration and the guest image. Install records what it
// added in a manifest, so Uninstall removes exactly that (and keeps the
// configuration and the data, workspaces included, unless asked to purge).
package install

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentiso/agentiso/deploy"
	"github.com/agentiso/agentiso/internal/cgroup"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/network"
)

// Where Install puts things (below Options.Root).
const (
	BinPath      = "/usr/local/bin/agentiso"
	LibDir       = "/usr/local/lib/agentiso"
	GuestPath    = LibDir + "/agentiso-guest"
	UnitPath     = "/etc/systemd/system/" + deploy.UnitName
	ManifestPath = LibDir + "/install.json"
)

// systemdRunDir exists when systemd is the running init.
const systemdRunDir = "/run/systemd/system"

// Options configure Install and Uninstall.
type Options struct {
	// Root is prepended to every path written or removed: a staging tree
	// (packaging, tests). Empty installs on this host, and only then are
	// systemd and the host's cgroups touched.
	Root string
	// ConfigPath is the configuration file; empty means config.DefaultPath.
	ConfigPath string
	// Binary and GuestBinary are the agentiso and agentiso-guest binaries
	// to install. Install only.
	Binary, GuestBinary string
	// BuildImage builds the guest image of cfg into dir from the installed
	// guest binary; nil skips the image. Install only.
	BuildImage func(ctx context.Context, cfg config.Config, dir, guestBinary string) error
	// Purge makes Uninstall remove the configuration and all data too
	// (images, workspaces, state, cache).
	Purge bool
	// Force makes Uninstall kill running workspace VMs instead of refusing.
	Force bool
	// Out receives one line per step.
	Out io.Writer
}

func (o *Options) defaults() {
	if o.ConfigPath == "" {
		o.ConfigPath = config.DefaultPath
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Root == "/" {
		o.Root = ""
	}
}

// at is path below Root.
func (o Options) at(path string) string {
	if o.Root == "" {
		return path
	}
	return filepath.Join(o.Root, path)
}

func (o Options) systemd() bool {
	if o.Root != "" {
		return false
	}
	_, err := os.Stat(systemdRunDir)
	return err == nil
}

// Manifest is what Install added, so Uninstall removes only that.
type Manifest struct {
	InstalledAt time.Time `json:"installed_at"`
	ConfigPath  string    `json:"config_path"`
	// Files are the files Install wrote (binaries, unit).
	Files []string `json:"files"`
	// Group is the group Install created; empty if it existed already.
	Group string `json:"group,omitempty"`
	// ConfigCreated says the configuration file was written by Install.
	ConfigCreated bool `json:"config_created"`
	// UnitEnabled says the unit was enabled with systemctl.
	UnitEnabled bool `json:"unit_enabled"`
}

// Install installs agentiso; run again, it upgrades the binaries and unit
// in place and keeps the configuration. Every step is idempotent.
func Install(ctx context.Context, o Options) (*Manifest, error) {
	o.defaults()
	if os.Geteuid() != 0 {
		return nil, errdefs.PermissionDeniedf("install needs root")
	}
	if o.Binary == "" || o.GuestBinary == "" {
		return nil, errdefs.Invalidf("install: the agentiso and agentiso-guest binaries are required")
	}
	m, err := readManifest(o.at(ManifestPath))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if m == nil {
		m = &Manifest{}
	}
	m.InstalledAt = time.Now().UTC()
	m.ConfigPath = o.ConfigPath
	// The manifest is saved after every step, so whatever step fails,
	// uninstall can remove what the steps before it added.
	save := func() error { return writeManifest(o.at(ManifestPath), m) }

	switch err := config.WriteDefault(o.at(o.ConfigPath)); {
	case err == nil:
		m.ConfigCreated = true
		fmt.Fprintf(o.Out, "wrote default config %s\n", o.at(o.ConfigPath))
	case errors.Is(err, fs.ErrExist):
		fmt.Fprintf(o.Out, "config %s exists; keeping it\n", o.at(o.ConfigPath))
	default:
		return nil, err
	}
	// A config that does not load stops the install before anything else
	// changes.
	cfg, err := config.Load(o.at(o.ConfigPath))
	if err != nil {
		return nil, err
	}
	if err := save(); err != nil {
		return nil, err
	}

	for _, f := range []struct{ src, dst string }{{o.Binary, BinPath}, {o.GuestBinary, GuestPath}} {
		if err := copyFile(f.src, o.at(f.dst), 0o755); err != nil {
			return nil, err
		}
		m.addFile(f.dst)
		if err := save(); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Out, "installed %s\n", o.at(f.dst))
	}

	if g := cfg.Server.SocketGroup; g != "" {
		created, err := o.ensureGroup(ctx, g)
		if err != nil {
			return nil, err
		}
		if created {
			m.Group = g
			if err := save(); err != nil {
				return nil, err
			}
			fmt.Fprintf(o.Out, "created group %s (members may use agentiso: usermod -aG %s <user>)\n", g, g)
		}
	}

	if err := os.MkdirAll(o.at(cfg.Server.DataDir), 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(o.at(cfg.Server.DataDir), 0o700); err != nil {
		return nil, err
	}
	if o.BuildImage != nil {
		if err := o.BuildImage(ctx, o.rebase(cfg), o.at(cfg.ImageDir()), o.at(GuestPath)); err != nil {
			return nil, fmt.Errorf("building the guest image: %w", err)
		}
	}

	unit := strings.Replace(string(deploy.Unit), "--config "+config.DefaultPath, "--config "+o.ConfigPath, 1)
	if err := writeFileAtomic(o.at(UnitPath), []byte(unit), 0o644); err != nil {
		return nil, err
	}
	m.addFile(UnitPath)
	if err := save(); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "installed %s\n", o.at(UnitPath))

	if o.systemd() {
		m.UnitEnabled = true
		if err := save(); err != nil {
			return nil, err
		}
		// restart, not start: an upgrade takes effect; the VMs stay up.
		for _, args := range [][]string{{"daemon-reload"}, {"enable", "agentiso"}, {"restart", "agentiso"}} {
			if _, err := hostcmd.Run(ctx, "systemctl", args...); err != nil {
				return m, err
			}
		}
		fmt.Fprintln(o.Out, "daemon enabled and (re)started by systemd: systemctl status agentiso")
	} else if o.Root == "" {
		fmt.Fprintln(o.Out, "systemd is not running on this host: start the daemon yourself (agentiso daemon)")
	}
	return m, nil
}

// rebase moves cfg's directories below Root, for building into a staging
// tree.
func (o Options) rebase(cfg config.Config) config.Config {
	if o.Root == "" {
		return cfg
	}
	cfg.Image.Dir = o.at(cfg.ImageDir())
	cfg.Image.CacheDir = o.at(cfg.Image.CacheDir)
	cfg.Server.DataDir = o.at(cfg.Server.DataDir)
	return cfg
}

// Uninstall removes what Install added: it stops and disables the service,
// removes the binaries, the unit and the group it created, and the VMs'
// parent cgroup. Configuration and data stay unless Purge. Running
// workspace VMs make it refuse, unless Force (they are killed).
func Uninstall(ctx context.Context, o Options) error {
	o.defaults()
	if os.Geteuid() != 0 {
		return errdefs.PermissionDeniedf("uninstall needs root")
	}
	m, err := readManifest(o.at(ManifestPath))
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFoundf("no install manifest at %s: agentiso was not installed by `agentiso install` here; nothing removed", o.at(ManifestPath))
	}
	if err != nil {
		return err
	}
	if m.ConfigPath != "" {
		o.ConfigPath = m.ConfigPath
	}
	cfg, err := config.Load(o.at(o.ConfigPath))
	if err != nil {
		if !errdefs.Is(err, errdefs.NotFound) {
			return err
		}
		cfg = config.Default()
	}

	vms := runningVMs(o.at(cfg.VMRunDir()))
	if len(vms) > 0 && !o.Force {
		return errdefs.Conflictf("%d workspace VMs are running (qemu pids %v): destroy them first, or pass --force to kill them", len(vms), vms)
	}

	if o.systemd() && m.UnitEnabled {
		if _, err := hostcmd.Run(ctx, "systemctl", "disable", "--now", "agentiso"); err != nil {
			return err
		}
		fmt.Fprintln(o.Out, "stopped and disabled the agentiso service")
	}
	if pid, err := stopDaemon(ctx, o.at(cfg.Server.SocketPath)); err != nil {
		return err
	} else if pid > 0 {
		fmt.Fprintf(o.Out, "stopped the daemon (pid %d)\n", pid)
	}
	for _, pid := range vms {
		if err := killPID(pid); err != nil {
			return fmt.Errorf("killing workspace VM (qemu pid %d): %w", pid, err)
		}
		fmt.Fprintf(o.Out, "killed workspace VM (qemu pid %d)\n", pid)
	}

	for _, f := range m.Files {
		if err := os.Remove(o.at(f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		fmt.Fprintf(o.Out, "removed %s\n", o.at(f))
	}
	if o.systemd() {
		if _, err := hostcmd.Run(ctx, "systemctl", "daemon-reload"); err != nil {
			return err
		}
	}
	if m.Group != "" {
		if err := o.removeGroup(ctx, m.Group); err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "removed group %s\n", m.Group)
	}
	if o.Root == "" {
		if cg, err := cgroup.Open(cgroup.Options{Parent: cfg.Resources.CgroupParent}); err == nil {
			if err := cg.RemoveParent(); err != nil {
				fmt.Fprintf(o.Out, "kept cgroup %s: %v\n", cfg.Resources.CgroupParent, err)
			}
		}
	}
	if o.Root == "" && cfg.Network.Enabled {
		// The daemon's nftables tables and bridge go with it; tables and
		// interfaces of others are not touched.
		host, err := network.NewHost(cfg.Network.HostConfig(nil))
		if err == nil {
			err = host.Teardown()
		}
		if err != nil {
			fmt.Fprintf(o.Out, "kept the network (bridge %s, nftables tables %q): %v\n", cfg.Network.Bridge, network.TableName, err)
		} else {
			fmt.Fprintf(o.Out, "removed the bridge %s and the nftables tables %q\n", cfg.Network.Bridge, network.TableName)
		}
	}
	os.RemoveAll(o.at(cfg.Server.RunDir))

	if o.Purge {
		for _, d := range []string{cfg.ImageDir(), cfg.Server.DataDir, cfg.Image.CacheDir} {
			if err := os.RemoveAll(o.at(d)); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "purged %s\n", o.at(d))
		}
		if err := os.Remove(o.at(o.ConfigPath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		os.Remove(filepath.Dir(o.at(o.ConfigPath))) // only if empty
		fmt.Fprintf(o.Out, "purged %s\n", o.at(o.ConfigPath))
	} else {
		fmt.Fprintf(o.Out, "kept the config %s and the data in %s (--purge removes them)\n", o.at(o.ConfigPath), o.at(cfg.Server.DataDir))
	}

	if err := os.Remove(o.at(ManifestPath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	os.Remove(o.at(LibDir)) // only if empty
	return nil
}

func (m *Manifest) addFile(path string) {
	for _, f := range m.Files {
		if f == path {
			return
		}
	}
	m.Files = append(m.Files, path)
}

func readManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading install manifest %s: %w", path, err)
	}
	return &m, nil
}

func writeManifest(path string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}

// ensureGroup creates the system group name unless it exists, and reports
// whether it created it.
func (o Options) ensureGroup(ctx context.Context, name string) (bool, error) {
	exists, err := o.groupExists(name)
	if err != nil || exists {
		return false, err
	}
	args := []string{"--system"}
	if o.Root != "" {
		args = append(args, "--prefix", o.Root)
	}
	if _, err := hostcmd.Run(ctx, "groupadd", append(args, name)...); err != nil {
		return false, fmt.Errorf("creating group %s: %w", name, err)
	}
	return true, nil
}

func (o Options) removeGroup(ctx context.Context, name string) error {
	if exists, err := o.groupExists(name); err != nil || !exists {
		return err
	}
	var args []string
	if o.Root != "" {
		args = append(args, "--prefix", o.Root)
	}
	if _, err := hostcmd.Run(ctx, "groupdel", append(args, name)...); err != nil {
		return fmt.Errorf("removing group %s: %w", name, err)
	}
	return nil
}

func (o Options) groupExists(name string) (bool, error) {
	if o.Root == "" {
		_, err := user.LookupGroup(name)
		var unknown user.UnknownGroupError
		if errors.As(err, &unknown) {
			return false, nil
		}
		return err == nil, err
	}
	f, err := os.Open(o.at("/etc/group"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n, _, _ := strings.Cut(sc.Text(), ":"); n == name {
			return true, nil
		}
	}
	return false, sc.Err()
}

// copyFile installs src as dst (mode), atomically: a running binary being
// replaced keeps its old file.
func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	return writeFileAtomic(dst, b, mode)
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("installing %s: %w", path, err)
	}
	return nil
}
