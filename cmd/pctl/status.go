package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/ca/authclient"
)

func (a *app) statusCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: name, CA pins, counts of users and databases",
		Args:  argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(format, "text", "json"); err != nil {
			return err
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, cn *conn) error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, st)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "Cluster:\t%s\n", st.ClusterName)
			fmt.Fprintf(tw, "Auth service:\t%s (up %s)\n", cn.addr, shortDuration(st.Uptime))
			fmt.Fprintf(tw, "Users:\t%d\n", st.Users)
			fmt.Fprintf(tw, "Databases:\t%d\n", st.Databases)
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "CA pins:")
			tw = tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			hostPin := ""
			for _, p := range st.CAs {
				fmt.Fprintf(tw, "  %s\t%s\t(expires %s)\n", p.Type, p.Fingerprint, p.Expires.UTC().Format("2006-01-02"))
				if p.Type == "host" {
					hostPin = p.Fingerprint
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if hostPin != "" {
				fmt.Fprintf(a.stdout, "\nUsers pin the host CA on their first login: pcl login --proxy ADDR --user NAME --ca-pin %s\n", hostPin)
			}
			return nil
		})(cmd, args)
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func (a *app) dbCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "db", Short: "Inspect the databases agents serve"}
	var format string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the databases in the inventory, one line per agent serving each",
		Args:  argNames(),
	}
	ls.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(format, "text", "json"); err != nil {
			return err
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			dbs, err := c.ListDatabases(ctx)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, dbs)
			}
			now := a.now()
			rows := make([][]string, 0, len(dbs))
			for _, db := range dbs {
				rows = append(rows, []string{db.Name, db.Protocol, labelsString(db.Labels), orDash(db.HostID), heartbeat(db.LastHeartbeat, now)})
			}
			return table(a.stdout, []string{"NAME", "PROTOCOL", "LABELS", "AGENT", "LAST HEARTBEAT"}, rows)
		})(cmd, args)
	}
	ls.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.AddCommand(ls)
	return cmd
}

func heartbeat(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return relative(t, now)
}
