package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/cli"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

// exitStatus is an exit code to leave with and nothing to print: the
// code of the command `agentiso exec` ran.
type exitStatus int

func (e exitStatus) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// cliFlags are the flags every human command shares.
type cliFlags struct {
	cfgPath *string
	socket  string
	json    bool
}

// client connects to the REST API socket: --socket, else the config's
// api.socket_path (a config this user cannot read keeps the default).
func (f *cliFlags) client() *cli.Client {
	socket := f.socket
	if socket == "" {
		cfg := config.Default()
		if c, err := config.Load(*f.cfgPath); err == nil {
			cfg = c
		}
		socket = cfg.APISocketPath()
	}
	return cli.NewClient(socket)
}

// out prints v as JSON with --json, else with table.
func (f *cliFlags) out(v any, table func() error) error {
	if f.json {
		return cli.PrintJSON(os.Stdout, v)
	}
	return table()
}

// args is cobra.ExactArgs whose refusal is a usage error (exit 2).
func args(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, a []string) error {
		if len(a) != n {
			return errdefs.Invalidf("want %s (%d argument(s)), got %d", names, n, len(a))
		}
		return nil
	}
}

// humanCmds are the commands a person runs against the daemon.
func humanCmds(cfgPath *string) []*cobra.Command {
	f := &cliFlags{cfgPath: cfgPath}
	cmds := []*cobra.Command{
		lsCmd(f), createCmd(f), execCmd(f), logsCmd(f), snapshotCmd(f), forkCmd(f),
		destroyCmd(f), statusCmd(f), startStopCmd(f, "start"), startStopCmd(f, "stop"),
		teamCmd(f), taskCmd(f),
	}
	for _, c := range cmds {
		c.PersistentFlags().StringVar(&f.socket, "socket", "", "the daemon's REST API socket (default: api.socket_path from the config)")
		c.PersistentFlags().BoolVar(&f.json, "json", false, "print the result as JSON")
	}
	return cmds
}

func ws(ref string) string { return "workspaces/" + url.PathEscape(ref) }

func lsCmd(f *cliFlags) *cobra.Command {
	var st string
	c := &cobra.Command{
		Use:   "ls",
		Short: "List workspaces (every session's: the CLI acts as administrator)",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var q url.Values
			if st != "" {
				q = url.Values{"state": {st}}
			}
			var list api.WorkspaceList
			if err := f.client().Do(cmd.Context(), "GET", "workspaces", q, nil, &list); err != nil {
				return err
			}
			return f.out(&list, func() error { return cli.PrintWorkspaces(os.Stdout, list.Workspaces) })
		},
	}
	c.Flags().StringVar(&st, "state", "", "only workspaces in this state: running, stopped, creating, error")
	return c
}

func createCmd(f *cliFlags) *cobra.Command {
	var req api.CreateRequest
	var internet bool
	c := &cobra.Command{
		Use:   "create [name]",
		Short: "Create and start a workspace",
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) > 1 {
				return errdefs.Invalidf("want at most one argument, the name; got %d", len(a))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) == 1 {
				req.Name = a[0]
			}
			if cmd.Flags().Changed("internet") {
				req.AllowInternet = &internet
			}
			var info workspace.Info
			if err := f.client().Do(cmd.Context(), "POST", "workspaces", nil, &req, &info); err != nil {
				return err
			}
			return f.out(&info, func() error { return cli.PrintWorkspace(os.Stdout, &info) })
		},
	}
	c.Flags().IntVar(&req.VCPUs, "vcpus", 0, "virtual CPUs (default: from the config)")
	c.Flags().IntVar(&req.MemoryMB, "memory", 0, "memory in MiB (default: from the config)")
	c.Flags().IntVar(&req.DiskGB, "disk", 0, "disk in GiB (default: from the config)")
	c.Flags().StringVar(&req.BaseImage, "image", "", "base image (default: the configured one)")
	c.Flags().BoolVar(&internet, "internet", false, "allow internet access")
	c.Flags().BoolVar(&req.FromPool, "from-pool", false, "claim a pre-booted VM from the warm pool when one of this size is ready")
	return c
}

func execCmd(f *cliFlags) *cobra.Command {
	var req api.ExecRequest
	var env []string
	c := &cobra.Command{
		Use:   "exec <workspace> [--] <command...>",
		Short: "Run a shell command in a workspace, streaming its output; exit with its exit code",
		Long: "Run a shell command in a workspace. Its output is printed as it comes (stdout to stdout, stderr\n" +
			"to stderr) and agentiso exits with the command's exit code. With --json nothing is streamed:\n" +
			"the result (exit_code, stdout, stderr) is printed and agentiso exits 0 when the command ran,\n" +
			"so a script can tell the command's code from agentiso's own.",
		Args: func(_ *cobra.Command, a []string) error {
			if len(execCommand(a)) == 0 {
				return errdefs.Invalidf("want a workspace and a command")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			req.Command = strings.Join(execCommand(a), " ")
			for _, kv := range env {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return errdefs.Invalidf("env: %q is not NAME=value", k)
				}
				if req.Env == nil {
					req.Env = map[string]string{}
				}
				req.Env[k] = v
			}
			cl := f.client()
			if f.json {
				var res cli.ExecResult
				if err := cl.Do(cmd.Context(), "POST", ws(a[0])+"/exec", nil, &req, &res); err != nil {
					return err
				}
				return cli.PrintJSON(os.Stdout, &res)
			}
			res, err := cl.Exec(cmd.Context(), a[0], req, func(o cli.Output) {
				if o.Stream == "stderr" {
					os.Stderr.WriteString(o.Data)
				} else {
					os.Stdout.WriteString(o.Data)
				}
			})
			if err != nil {
				return err
			}
			if res.Truncated {
				fmt.Fprintln(os.Stderr, "agentiso: the output was truncated (see --max-output)")
			}
			if res.ExitCode != 0 {
				return exitStatus(res.ExitCode)
			}
			return nil
		},
	}
	c.Flags().SetInterspersed(false) // flags after the workspace belong to the command
	c.Flags().IntVar(&req.TimeoutSecs, "timeout", 0, "seconds before the command is killed (default: from the config)")
	c.Flags().StringVar(&req.Workdir, "workdir", "", "working directory in the guest")
	c.Flags().StringArrayVarP(&env, "env", "e", nil, "NAME=value for the command (repeatable)")
	c.Flags().Int64Var(&req.MaxOutputBytes, "max-output", 0, "bytes of stdout and of stderr kept (default: from the config)")
	return c
}

// execCommand is the command of `exec <workspace> [--] <command...>`:
// flags stop at the workspace, so a "--" after it is still in the args.
func execCommand(a []string) []string {
	if len(a) < 2 {
		return nil
	}
	rest := a[1:]
	if rest[0] == "--" {
		rest = rest[1:]
	}
	return rest
}

func logsCmd(f *cliFlags) *cobra.Command {
	var typ string
	var lines int
	c := &cobra.Command{
		Use:   "logs <workspace>",
		Short: "Print a workspace's console log and QEMU's stderr",
		Args:  args(1, "a workspace"),
		RunE: func(cmd *cobra.Command, a []string) error {
			q := url.Values{"type": {typ}, "lines": {strconv.Itoa(lines)}}
			var logs workspace.Logs
			if err := f.client().Do(cmd.Context(), "GET", ws(a[0])+"/logs", q, nil, &logs); err != nil {
				return err
			}
			return f.out(&logs, func() error {
				if logs.Console != "" {
					if typ == "all" {
						fmt.Println("== console ==")
					}
					fmt.Print(withNewline(logs.Console))
				}
				if logs.Stderr != "" {
					if typ == "all" {
						fmt.Println("== qemu stderr ==")
					}
					fmt.Print(withNewline(logs.Stderr))
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&typ, "type", "all", "console, stderr or all")
	c.Flags().IntVarP(&lines, "lines", "n", 200, "last lines of each log")
	return c
}

func withNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

func snapshotCmd(f *cliFlags) *cobra.Command {
	c := &cobra.Command{Use: "snapshot", Short: "Create, list, restore and delete a workspace's snapshots"}
	var memory bool
	create := &cobra.Command{
		Use:   "create <workspace> <name>",
		Short: "Snapshot a workspace's disk (--memory: and its running processes)",
		Args:  args(2, "a workspace and a snapshot name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var s workspace.SnapshotInfo
			if err := f.client().Do(cmd.Context(), "POST", ws(a[0])+"/snapshots", nil, &api.SnapshotRequest{Name: a[1], IncludeMemory: memory}, &s); err != nil {
				return err
			}
			return f.out(&s, func() error { return cli.PrintSnapshots(os.Stdout, []workspace.SnapshotInfo{s}) })
		},
	}
	create.Flags().BoolVar(&memory, "memory", false, "also save the running VM's memory, so restore and fork resume its processes")
	list := &cobra.Command{
		Use:     "list <workspace>",
		Aliases: []string{"ls"},
		Short:   "List a workspace's snapshots, oldest first, with their parents",
		Args:    args(1, "a workspace"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var l api.SnapshotList
			if err := f.client().Do(cmd.Context(), "GET", ws(a[0])+"/snapshots", nil, nil, &l); err != nil {
				return err
			}
			return f.out(&l, func() error { return cli.PrintSnapshots(os.Stdout, l.Snapshots) })
		},
	}
	restore := &cobra.Command{
		Use:   "restore <workspace> <name>",
		Short: "Roll a workspace back to a snapshot (its current state and newer snapshots are dropped)",
		Args:  args(2, "a workspace and a snapshot name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var r workspace.RestoreResult
			if err := f.client().Do(cmd.Context(), "POST", ws(a[0])+"/snapshots/"+url.PathEscape(a[1])+"/restore", nil, nil, &r); err != nil {
				return err
			}
			return f.out(&r, func() error {
				fmt.Printf("%s restored to %s (%s)\n", a[0], r.Name, r.State)
				if len(r.RemovedSnapshots) > 0 {
					fmt.Printf("removed newer snapshots: %s\n", strings.Join(r.RemovedSnapshots, ", "))
				}
				return nil
			})
		},
	}
	del := &cobra.Command{
		Use:     "delete <workspace> <name>",
		Aliases: []string{"rm"},
		Short:   "Delete a snapshot (refused while forks stand on it)",
		Args:    args(2, "a workspace and a snapshot name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var d api.SnapshotDeleted
			if err := f.client().Do(cmd.Context(), "DELETE", ws(a[0])+"/snapshots/"+url.PathEscape(a[1]), nil, nil, &d); err != nil {
				return err
			}
			return f.out(&d, func() error { fmt.Printf("deleted snapshot %s\n", a[1]); return nil })
		},
	}
	c.AddCommand(create, list, restore, del)
	return c
}

func forkCmd(f *cliFlags) *cobra.Command {
	var req api.ForkRequest
	c := &cobra.Command{
		Use:   "fork <workspace> <snapshot>",
		Short: "Make new workspaces from a snapshot (--count N in parallel)",
		Args:  args(2, "a workspace and a snapshot name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			req.SnapshotName = a[1]
			var res workspace.ForkResult
			if err := f.client().Do(cmd.Context(), "POST", ws(a[0])+"/fork", nil, &req, &res); err != nil {
				return err
			}
			if err := f.out(&res, func() error {
				if err := cli.PrintWorkspaces(os.Stdout, res.Forks); err != nil {
					return err
				}
				for _, fl := range res.Failures {
					fmt.Fprintf(os.Stderr, "fork %s failed: %s\n", fl.Name, fl.Error)
				}
				return nil
			}); err != nil {
				return err
			}
			if len(res.Forks) == 0 && len(res.Failures) > 0 {
				return errdefs.Unavailablef("no fork could be made")
			}
			return nil
		},
	}
	c.Flags().StringVar(&req.NewName, "name", "", "name of the fork (one fork)")
	c.Flags().IntVar(&req.Count, "count", 0, "how many forks, 1-20, made in parallel")
	c.Flags().StringVar(&req.NamePrefix, "prefix", "", "forks are named <prefix>-1, <prefix>-2... (default worker)")
	return c
}

func destroyCmd(f *cliFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "destroy <workspace>...",
		Short: "Destroy workspaces: their VMs, disks and snapshots",
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) == 0 {
				return errdefs.Invalidf("want at least one workspace")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			cl := f.client()
			var done []api.Done
			var firstErr error
			for _, ref := range a {
				var d api.Done
				if err := cl.Do(cmd.Context(), "DELETE", ws(ref), nil, nil, &d); err != nil {
					fmt.Fprintf(os.Stderr, "agentiso: %s: %v\n", ref, err)
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				d.WorkspaceID = ref
				done = append(done, d)
				if !f.json {
					fmt.Printf("destroyed %s\n", ref)
				}
			}
			if f.json {
				if done == nil {
					done = []api.Done{}
				}
				if err := cli.PrintJSON(os.Stdout, done); err != nil {
					return err
				}
			}
			if firstErr != nil {
				return reported{firstErr}
			}
			return nil
		},
	}
}

// reported is an error already printed: main only takes its exit code.
type reported struct{ error }

func (r reported) Unwrap() error { return r.error }

func startStopCmd(f *cliFlags, verb string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " <workspace>",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a workspace's VM",
		Args:  args(1, "a workspace"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var info workspace.Info
			if err := f.client().Do(cmd.Context(), "POST", ws(a[0])+"/"+verb, nil, nil, &info); err != nil {
				return err
			}
			return f.out(&info, func() error { return cli.PrintWorkspace(os.Stdout, &info) })
		},
	}
}

func statusCmd(f *cliFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status [workspace]",
		Short: "The daemon and host (or one workspace's details)",
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) > 1 {
				return errdefs.Invalidf("want at most one workspace")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			cl := f.client()
			if len(a) == 1 {
				var info workspace.Info
				if err := cl.Do(cmd.Context(), "GET", ws(a[0]), nil, nil, &info); err != nil {
					return err
				}
				return f.out(&info, func() error { return cli.PrintWorkspace(os.Stdout, &info) })
			}
			var h api.HostStats
			if err := cl.Do(cmd.Context(), "GET", "host", nil, nil, &h); err != nil {
				return err
			}
			return f.out(&h, func() error { return cli.PrintHost(os.Stdout, &h) })
		},
	}
}
