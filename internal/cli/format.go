package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/workspace"
)

// PrintJSON writes v as indented JSON: the --json form of every command.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// PrintWorkspaces is the table of `agentiso ls`.
func PrintWorkspaces(w io.Writer, list []workspace.Info) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no workspaces")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "NAME\tID\tSTATE\tIP\tVCPUS\tMEMORY\tUPTIME\tSNAPSHOTS\tFORKED FROM")
	for _, i := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d MiB\t%s\t%d\t%s\n", i.Name, shortID(i.ID), i.State, dash(i.IP),
			i.Resources.VCPUs, i.Resources.MemoryMB, uptime(i), len(i.Snapshots), forkedFrom(i.ForkedFrom))
	}
	return tw.Flush()
}

// PrintWorkspace is the detail `agentiso create`, `status <ws>` and
// `fork` print for one workspace.
func PrintWorkspace(w io.Writer, i *workspace.Info) error {
	tw := table(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("name", i.Name)
	row("id", i.ID)
	row("state", i.State)
	row("ip", dash(i.IP))
	row("resources", fmt.Sprintf("%d vCPU, %d MiB memory, %d GiB disk", i.Resources.VCPUs, i.Resources.MemoryMB, i.Resources.DiskGB))
	row("internet", fmt.Sprint(i.Network.AllowInternet))
	row("uptime", uptime(*i))
	if i.BootTimeMs > 0 {
		row("boot time", fmt.Sprintf("%d ms", i.BootTimeMs))
	}
	row("created", i.CreatedAt.Local().Format(time.DateTime))
	row("snapshots", dash(strings.Join(i.Snapshots, ", ")))
	row("forked from", forkedFrom(i.ForkedFrom))
	if i.LastError != "" {
		row("last error", i.LastError)
	}
	return tw.Flush()
}

// PrintSnapshots is the table of `agentiso snapshot list`: oldest first,
// each with its parent, so the rows read as the tree.
func PrintSnapshots(w io.Writer, list []workspace.SnapshotInfo) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no snapshots")
		return err
	}
	names := map[string]string{}
	for _, s := range list {
		names[s.ID] = s.Name
	}
	tw := table(w)
	fmt.Fprintln(tw, "NAME\tPARENT\tMEMORY\tDISK\tMEMORY SIZE\tFORKS\tCREATED")
	for _, s := range list {
		parent := "-"
		if s.Parent != nil {
			parent = *s.Parent
			if n, ok := names[parent]; ok {
				parent = n
			}
		}
		mem := "no"
		if s.HasMemory {
			mem = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, parent, mem, Bytes(s.DiskBytes), Bytes(s.MemoryBytes), s.Forks,
			s.CreatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// PrintHost is `agentiso status` without a workspace: the daemon and the
// host.
func PrintHost(w io.Writer, h *api.HostStats) error {
	tw := table(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("daemon", "running")
	row("workspaces", fmt.Sprintf("%d running, %d in all (at most %d VMs)", h.VMsRunning, h.VMsTotal, h.MaxTotalVMs))
	row("guest memory", fmt.Sprintf("%d MiB in running workspaces", h.VMMemoryMB))
	row("host memory", fmt.Sprintf("%s available of %s", Bytes(h.MemoryAvailableBytes), Bytes(h.MemoryTotalBytes)))
	row("disk", fmt.Sprintf("%s free of %s", Bytes(h.DiskFreeBytes), Bytes(h.DiskTotalBytes)))
	row("load", fmt.Sprintf("%.2f", h.Load1))
	if h.Pool != nil {
		row("warm pool", fmt.Sprintf("%d ready of %d", h.Pool.Ready, h.Pool.Target))
	}
	return tw.Flush()
}

// Bytes is n in binary units, as people read sizes.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func uptime(i workspace.Info) string {
	if i.State != "running" || i.UptimeSecs <= 0 {
		return "-"
	}
	return (time.Duration(i.UptimeSecs) * time.Second).String()
}

func forkedFrom(f *workspace.ForkedFrom) string {
	if f == nil {
		return "-"
	}
	src := f.SourceWorkspaceName
	if src == "" {
		src = shortID(f.SourceWorkspaceID)
	}
	return src + "@" + f.SnapshotName
}
