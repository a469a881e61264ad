package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
)

func (a *app) locksCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "locks", Short: "Lock users or roles out of the cluster"}
	cmd.AddCommand(a.locksAddCmd(), a.locksLsCmd(), a.locksRmCmd())
	return cmd
}

func (a *app) locksAddCmd() *cobra.Command {
	var (
		target  policy.LockTarget
		message string
		ttl     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "add --user U | --role R [--message M] [--ttl 1h]",
		Short: "Lock a user or role: no new certificates or sessions, running sessions end",
		Args:  argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if target.IsEmpty() {
			return fmt.Errorf("name whom to lock with --user or --role")
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			l, err := c.CreateLock(ctx, authclient.CreateLockRequest{Target: target, Message: message, TTL: ttl})
			if err != nil {
				return err
			}
			until := "until it is removed"
			if !l.Expires.IsZero() {
				until = "until " + when(l.Expires, a.now())
			}
			fmt.Fprintf(a.stdout, "Locked %s %s (lock %s). Remove it with: pctl locks rm %s\n", l.Target, until, l.Name, l.Name)
			return nil
		})(cmd, args)
	}
	f := cmd.Flags()
	f.StringVar(&target.User, "user", "", "the user to lock")
	f.StringVar(&target.Role, "role", "", "the role to lock (with --user: that user while holding the role)")
	f.StringVar(&message, "message", "", "the reason, shown to the locked user")
	f.DurationVar(&ttl, "ttl", 0, "how long the lock lasts (default: until removed)")
	return cmd
}

func (a *app) locksLsCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List locks in force",
		Args:  argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(format, "text", "json"); err != nil {
			return err
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			locks, err := c.ListLocks(ctx)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, locks)
			}
			now := a.now()
			rows := make([][]string, 0, len(locks))
			for _, l := range locks {
				rows = append(rows, []string{l.Name, l.Target.String(), orDash(l.Message), when(l.Expires, now), orDash(l.CreatedBy)})
			}
			return table(a.stdout, []string{"NAME", "TARGET", "MESSAGE", "EXPIRES", "CREATED BY"}, rows)
		})(cmd, args)
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func (a *app) locksRmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a lock by the name locks ls prints",
		Args:  argNames("the lock's name"),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			if err := c.DeleteLock(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Lock %s removed.\n", args[0])
			return nil
		})(cmd, args)
	}
	return cmd
}
