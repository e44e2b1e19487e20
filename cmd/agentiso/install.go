package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/install"
)

func installCmd(cfgPath *string) *cobra.Command {
	var o install.Options
	var skipImage bool
	c := &cobra.Command{
		Use:   "install",
		Short: "Install agentiso on this host: binaries, systemd unit, group, default config, guest image",
		Long: `Installs this agentiso binary and agentiso-guest, the systemd unit, the group
whose members may use the daemon, the default config (kept if one exists) and
the guest image, then enables and (re)starts the service where systemd runs.
Safe to run again (an upgrade). What it adds is recorded for 'agentiso uninstall'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Binary = exe
			if o.GuestBinary == "" {
				if o.GuestBinary, err = findGuestBinary(); err != nil {
					return err
				}
			}
			o.ConfigPath = *cfgPath
			o.Out = os.Stdout
			if !skipImage {
				o.BuildImage = func(ctx context.Context, cfg config.Config, dir, guest string) error {
					return buildImage(ctx, cfg, dir, guest, false)
				}
			}
			if _, err := install.Install(cmd.Context(), o); err != nil {
				return err
			}
			if o.Root == "" {
				fmt.Print(mcpHowTo)
			}
			return nil
		},
	}
	c.Flags().StringVar(&o.GuestBinary, "guest-binary", "", "the agentiso-guest binary (default: next to this binary)")
	c.Flags().StringVar(&o.Root, "root", "", "install into this directory tree instead of / (staging, packaging)")
	c.Flags().BoolVar(&skipImage, "skip-image", false, "do not build the guest image")
	return c
}

func uninstallCmd(cfgPath *string) *cobra.Command {
	var o install.Options
	c := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what 'agentiso install' added; the config and data stay unless --purge",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.ConfigPath = *cfgPath
			o.Out = os.Stdout
			return install.Uninstall(cmd.Context(), o)
		},
	}
	c.Flags().StringVar(&o.Root, "root", "", "the directory tree installed into with --root")
	c.Flags().BoolVar(&o.Purge, "purge", false, "also remove the config and all data: images, workspaces, state, cache")
	c.Flags().BoolVar(&o.Force, "force", false, "kill running workspace VMs instead of refusing")
	return c
}
