package main

import (
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/cli"
	"github.com/agentiso/agentiso/internal/team"
)

func teamPath(name string) string { return "teams/" + url.PathEscape(name) }

func teamCmd(f *cliFlags) *cobra.Command {
	c := &cobra.Command{Use: "team", Short: "List teams and show their members"}
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the teams",
		Args:    args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l api.TeamList
			if err := f.client().Do(cmd.Context(), "GET", "teams", nil, nil, &l); err != nil {
				return err
			}
			return f.out(&l, func() error { return cli.PrintTeams(os.Stdout, l.Teams) })
		},
	}
	status := &cobra.Command{
		Use:   "status <team>",
		Short: "Show a team: its members, their workspaces, unread messages and running tasks",
		Args:  args(1, "a team"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var t team.Info
			if err := f.client().Do(cmd.Context(), "GET", teamPath(a[0]), nil, nil, &t); err != nil {
				return err
			}
			return f.out(&t, func() error { return cli.PrintTeam(os.Stdout, &t) })
		},
	}
	c.AddCommand(list, status)
	return c
}

func taskCmd(f *cliFlags) *cobra.Command {
	c := &cobra.Command{Use: "task", Short: "A team's task board: list tasks, move one to another status"}
	list := &cobra.Command{
		Use:     "list <team>",
		Aliases: []string{"ls"},
		Short:   "List a team's tasks by status",
		Args:    args(1, "a team"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var b team.Board
			if err := f.client().Do(cmd.Context(), "GET", teamPath(a[0])+"/tasks", nil, nil, &b); err != nil {
				return err
			}
			return f.out(&b, func() error { return cli.PrintBoard(os.Stdout, &b) })
		},
	}
	move := &cobra.Command{
		Use:   "move <team> <task> <status>",
		Short: "Set a task's status (todo, in_progress, blocked, review, done); INDEX.md follows",
		Args:  args(3, "a team, a task and a status"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var t team.Task
			if err := f.client().Do(cmd.Context(), "POST", teamPath(a[0])+"/tasks/"+url.PathEscape(a[1])+"/move", nil, &api.TaskMove{Status: a[2]}, &t); err != nil {
				return err
			}
			return f.out(&t, func() error { fmt.Printf("%s is now %s\n", t.ID, t.Status); return nil })
		},
	}
	c.AddCommand(list, move)
	return c
}
