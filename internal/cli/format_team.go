package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/agentiso/agentiso/internal/team"
)

// PrintTeams is the table of `agentiso team list`.
func PrintTeams(w io.Writer, list []team.ListEntry) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no teams")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "NAME\tSTATE\tPARENT\tMEMBERS\tMAX VMS")
	for _, t := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", t.Name, t.State, dash(t.ParentTeam), t.Members, t.MaxVMs)
	}
	return tw.Flush()
}

// PrintTeam is `agentiso team status <team>`: the team and its members.
func PrintTeam(w io.Writer, t *team.Info) error {
	fmt.Fprintf(w, "team %s (%s), %d of %d VMs", t.Name, t.State, t.UsedVMs, t.MaxVMs)
	if t.ParentTeam != "" {
		fmt.Fprintf(w, ", sub-team of %s", t.ParentTeam)
	}
	if len(t.SubTeams) > 0 {
		fmt.Fprintf(w, ", sub-teams %s", strings.Join(t.SubTeams, ", "))
	}
	fmt.Fprintln(w)
	tw := table(w)
	fmt.Fprintln(tw, "MEMBER\tROLE\tWORKSPACE\tSTATE\tIP\tUNREAD\tTASKS")
	for _, m := range t.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", m.Name, m.Role, m.WorkspaceName, m.State, dash(m.IP), m.UnreadCount, m.PendingTasks)
	}
	return tw.Flush()
}

// PrintBoard is `agentiso task list <team>`: the tasks by status, in the
// board's column order.
func PrintBoard(w io.Writer, b *team.Board) error {
	if len(b.Tasks) == 0 {
		_, err := fmt.Fprintln(w, "no tasks")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "STATUS\tTASK\tTITLE\tOWNER\tDEPENDS ON")
	for _, st := range append(append([]string{}, b.Statuses...), "") {
		for _, t := range b.Tasks {
			if t.Status != st {
				continue
			}
			status := t.Status
			if t.Invalid != "" {
				status = "invalid: " + t.Invalid
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", status, t.ID, t.Title, dash(t.Owner), dash(strings.Join(t.DependsOn, ", ")))
		}
	}
	return tw.Flush()
}
