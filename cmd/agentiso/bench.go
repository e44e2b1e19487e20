package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/agentiso/agentiso/internal/bench"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/errdefs"
)

func benchCmd(cfgPath *string) *cobra.Command {
	var (
		short    bool
		asJSON   bool
		imageDir string
		keepLogs string
		idleVMs  []int
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure boot, exec, file transfer, snapshots, forks and memory on a private daemon (needs root)",
		Long: `bench starts a private daemon of this binary (its own data dir, run dir and socket;
the installed daemon is not touched), drives it through ` + "`agentiso mcp`" + ` as an agent does,
times the same work on the raw guest channel, and prints every figure with its median,
spread and ratio to its floor. Everything it starts is removed when it ends.
The full mode takes a few minutes under TCG and runs up to 10 VMs at once; --short
runs few iterations and at most 2 VMs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if imageDir == "" {
				cfg, err := config.Load(*cfgPath)
				if err != nil {
					cfg = config.Default()
				}
				imageDir = cfg.ImageDir()
			}
			for _, n := range idleVMs {
				if n < 1 || n > 32 {
					return errdefs.Invalidf("--idle-vms: each count must be 1..32, got %d", n)
				}
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			rep, err := bench.Run(cmd.Context(), bench.Options{Binary: self, ImageDir: imageDir, Short: short, IdleVMs: idleVMs, Log: log, KeepLogs: keepLogs})
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			if asJSON {
				return rep.WriteJSON(os.Stdout)
			}
			return rep.WriteTable(os.Stdout)
		},
	}
	c.Flags().BoolVar(&short, "short", false, "few iterations and at most 2 VMs (what CI runs)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	c.Flags().StringVar(&imageDir, "image-dir", "", "guest image to boot (default: the configured one)")
	c.Flags().StringVar(&keepLogs, "keep-logs", "", "copy the daemon's log and the cold boots' console logs to this directory")
	c.Flags().IntSliceVar(&idleVMs, "idle-vms", nil, "VM counts for the memory figures (default 1,5,10; --short 1,2)")
	return c
}
