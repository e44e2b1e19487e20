// Command agentiso is the daemon, the MCP stdio shim and the human CLI of
// agentiso. This file only wires cobra commands to the packages that do the
// work.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/agentiso/agentiso/internal/cli"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/daemon"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/image"
	"github.com/agentiso/agentiso/internal/mcpshim"
	"github.com/agentiso/agentiso/internal/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRoot().ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

// exitCode prints err (unless already printed) and returns the exit code
// scripts can rely on (cli.ExitCode; docs/cli.md): an exec'd command's own
// code, else the code of err's class.
func exitCode(err error) int {
	var st exitStatus
	var rep reported
	switch {
	case err == nil:
		return 0
	case errors.As(err, &st):
		return int(st)
	case errors.As(err, &rep):
	default:
		if errdefs.ClassOf(err) == errdefs.Internal && isUsageError(err) {
			err = errdefs.Invalidf("%v (see agentiso --help)", err)
		}
		fmt.Fprintln(os.Stderr, "agentiso:", err)
	}
	return cli.ExitCode(err)
}

// isUsageError reports whether err is cobra's refusal of the command line
// itself, which it does not classify.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "required flag"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func newRoot() *cobra.Command {
	var cfgPath string
	root := &cobra.Command{
		Use:           "agentiso",
		Short:         "Isolated, snapshotable Linux workspaces (microVMs) for AI agents, over MCP",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&cfgPath, "config", config.DefaultPath, "configuration file")
	root.AddCommand(
		daemonCmd(&cfgPath),
		mcpCmd(&cfgPath),
		initCmd(&cfgPath),
		checkCmd(&cfgPath),
		imageCmd(&cfgPath),
		installCmd(&cfgPath),
		uninstallCmd(&cfgPath),
		networkCmd(&cfgPath),
		benchCmd(&cfgPath),
	)
	root.AddCommand(humanCmds(&cfgPath)...)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return errdefs.Invalidf("%v (see --help)", err)
	})
	return root
}

// newLogger writes text lines to stderr, each one passed through the
// credential redactor first (M-7).
func newLogger(cfg config.Config) *slog.Logger {
	return slog.New(redact.NewHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.Server.SlogLevel()})))
}

func daemonCmd(cfgPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "daemon",
		Short: "Run the agentiso daemon (normally started by systemd)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(*cfgPath)
			if err != nil {
				return err
			}
			log := newLogger(cfg)
			d, err := daemon.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer d.Close()
			err = d.Serve(cmd.Context())
			log.Info("daemon stopping; workspace VMs keep running")
			return err
		},
	}
}

func networkCmd(cfgPath *string) *cobra.Command {
	c := &cobra.Command{Use: "network", Short: "Workspace networking on this host"}
	c.AddCommand(&cobra.Command{
		Use:   "teardown",
		Short: "Remove agentiso's nftables tables and bridge (uninstall; stop the daemon and workspaces first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(*cfgPath)
			if err != nil {
				return err
			}
			if err := daemon.TeardownNetwork(cfg, newLogger(cfg)); err != nil {
				return err
			}
			fmt.Printf("removed the nftables tables %q and the bridge %s\n", "agentiso", cfg.Network.Bridge)
			return nil
		},
	})
	return c
}

func mcpCmd(cfgPath *string) *cobra.Command {
	var socket string
	c := &cobra.Command{
		Use:   "mcp",
		Short: "Serve MCP on stdin/stdout (what an MCP client launches); relays to the daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if socket == "" {
				socket = config.Default().Server.SocketPath
				// A config this user cannot read keeps the default socket.
				if cfg, err := config.Load(*cfgPath); err == nil {
					socket = cfg.Server.SocketPath
				}
			}
			return mcpshim.Run(cmd.Context(), socket, os.Stdin, os.Stdout)
		},
	}
	c.Flags().StringVar(&socket, "socket", "", "daemon socket (default: from the config)")
	return c
}

func checkCmd(cfgPath *string) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "check",
		Short: "Check every prerequisite and print a fix for each failure",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cfgErr := config.Load(*cfgPath)
			results := daemon.Check(cmd.Context(), *cfgPath, cfg, cfgErr)
			failed := 0
			for _, r := range results {
				if r.Status == daemon.Fail {
					failed++
				}
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					fmt.Printf("%-5s %-14s %s\n", r.Status, r.Name, r.Detail)
					if r.Fix != "" && r.Status != daemon.OK {
						fmt.Printf("      %-14s fix: %s\n", "", r.Fix)
					}
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d check(s) failed", failed)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	return c
}

func initCmd(cfgPath *string) *cobra.Command {
	var guest string
	c := &cobra.Command{
		Use:   "init",
		Short: "Check host packages, write a default config, and build the guest image",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return errdefs.PermissionDeniedf("init needs root (it builds the image with debootstrap)")
			}
			if missing := image.CheckHostTools(); len(missing) > 0 {
				var pkgs []string
				for _, t := range missing {
					fmt.Fprintf(os.Stderr, "missing: %s\n", t)
					pkgs = append(pkgs, t.Package)
				}
				return errdefs.Unavailablef("host packages are missing; install them with: apt-get install %s", joinUnique(pkgs))
			}
			if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
				return errdefs.Unavailablef("qemu-system-x86_64 is missing; install it with: apt-get install qemu-system-x86")
			}
			if err := os.MkdirAll(filepath.Dir(*cfgPath), 0o755); err != nil {
				return err
			}
			switch err := config.WriteDefault(*cfgPath); {
			case err == nil:
				fmt.Printf("wrote default config %s\n", *cfgPath)
			case errors.Is(err, fs.ErrExist):
				fmt.Printf("config %s exists; keeping it\n", *cfgPath)
			default:
				return err
			}
			cfg, err := config.Load(*cfgPath)
			if err != nil {
				return err
			}
			if err := daemon.PrepareDataDir(cfg); err != nil {
				return err
			}
			if err := buildImage(cmd.Context(), cfg, cfg.ImageDir(), guest, false); err != nil {
				return err
			}
			fmt.Print(mcpHowTo)
			return nil
		},
	}
	c.Flags().StringVar(&guest, "guest-binary", "", "the agentiso-guest binary (default: next to this binary)")
	return c
}

const mcpHowTo = `
agentiso is initialised. Start the daemon (systemctl start agentiso, or agentiso daemon),
then add it to your MCP client, for example:
  claude mcp add agentiso -- agentiso mcp
or in a client's JSON config:
  {"mcpServers": {"agentiso": {"command": "agentiso", "args": ["mcp"]}}}
`

func imageCmd(cfgPath *string) *cobra.Command {
	img := &cobra.Command{Use: "image", Short: "Manage the guest image"}
	var guest, dir string
	var force bool
	build := &cobra.Command{
		Use:   "build",
		Short: "Build (or confirm up to date) the guest image",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(*cfgPath)
			if errdefs.Is(err, errdefs.NotFound) {
				cfg, err = config.Default(), nil
			}
			if err != nil {
				return err
			}
			if dir == "" {
				dir = cfg.ImageDir()
			}
			return buildImage(cmd.Context(), cfg, dir, guest, force)
		},
	}
	build.Flags().StringVar(&guest, "guest-binary", "", "the agentiso-guest binary (default: next to this binary)")
	build.Flags().StringVar(&dir, "dir", "", "image directory (default: from the config)")
	build.Flags().BoolVar(&force, "force", false, "rebuild everything, the cached root filesystem included")
	img.AddCommand(build)
	return img
}

func buildImage(ctx context.Context, cfg config.Config, dir, guest string, force bool) error {
	if guest == "" {
		var err error
		if guest, err = findGuestBinary(); err != nil {
			return err
		}
	}
	img, err := image.Build(ctx, image.BuildOptions{
		Dir: dir, CacheDir: cfg.Image.CacheDir, Suite: cfg.Image.Suite, Mirror: cfg.Image.Mirror,
		ExtraPackages: cfg.Image.ExtraPackages, GuestBinary: guest, Force: force,
		Progress: image.ProgressWriter(os.Stdout),
		Logger:   newLogger(cfg),
	})
	if err != nil {
		return err
	}
	fmt.Printf("guest image ready: %s (kernel %s)\n", img.Dir, img.Manifest.KernelVersion)
	return nil
}

// findGuestBinary looks for agentiso-guest next to this binary, then in the
// places the installer puts it.
func findGuestBinary() (string, error) {
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "agentiso-guest"))
	}
	candidates = append(candidates, "/usr/local/lib/agentiso/agentiso-guest", "/usr/lib/agentiso/agentiso-guest")
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			return c, nil
		}
	}
	return "", errdefs.NotFoundf("agentiso-guest not found (looked in %v); build it with `CGO_ENABLED=0 go build -o bin/agentiso-guest ./cmd/agentiso-guest` and pass --guest-binary", candidates)
}

func joinUnique(s []string) string {
	seen := map[string]bool{}
	out := ""
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			if out != "" {
				out += " "
			}
			out += v
		}
	}
	return out
}
