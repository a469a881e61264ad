package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/ca/authclient"
)

// Traits that `users add` and `users update` set; the preset access role
// reads them as {{internal.db_users}} and {{internal.db_names}}.
const (
	traitDBUsers = "db_users"
	traitDBNames = "db_names"
)

func (a *app) usersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage the cluster's users"}
	cmd.AddCommand(a.usersAddCmd(), a.usersLsCmd(), a.usersUpdateCmd(), a.usersRmCmd())
	return cmd
}

func (a *app) usersAddCmd() *cobra.Command {
	var (
		roles, dbUsers, dbNames []string
		passwordStdin           bool
		ttl                     time.Duration
		proxy                   string
	)
	cmd := &cobra.Command{
		Use:   "add NAME --roles R1,R2",
		Short: "Add a user; without --password-stdin print a one-time sign-up command for them",
		Args:  argNames("the user's name"),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		req := authclient.CreateUserRequest{
			User:     authclient.User{Name: name, Roles: roles, Traits: traits(dbUsers, dbNames)},
			TokenTTL: ttl,
		}
		if passwordStdin {
			pw, err := readSecretLine(a.stdin, "password")
			if err != nil {
				return err
			}
			req.Password = pw
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, cn *conn) error {
			resp, err := c.CreateUser(ctx, req)
			if err != nil {
				return err
			}
			if resp.SignupToken == "" {
				fmt.Fprintf(a.stdout, "User %s added with roles %s.\n", name, joinOrDash(resp.User.Roles))
				return nil
			}
			addr := proxy
			if addr == "" {
				addr = cn.addr
			}
			fmt.Fprintf(a.stdout, "User %s added with roles %s. They set a password with this one-time command;\n", name, joinOrDash(resp.User.Roles))
			fmt.Fprintf(a.stdout, "the token expires at %s:\n\n", when(resp.SignupExpires, a.now()))
			fmt.Fprintf(a.stdout, "  pcl signup --proxy %s --token %s --ca-pin %s\n\n", addr, resp.SignupToken, cn.hostPin())
			fmt.Fprintf(a.stdout, "Then they log in with: pcl login --proxy %s --user %s\n", addr, name)
			return nil
		})(cmd, args)
	}
	f := cmd.Flags()
	f.StringSliceVar(&roles, "roles", nil, "the user's roles, comma-separated (e.g. access)")
	f.StringSliceVar(&dbUsers, "db-users", nil, "database users the user may connect as (trait "+traitDBUsers+")")
	f.StringSliceVar(&dbNames, "db-names", nil, "database names the user may open (trait "+traitDBNames+")")
	f.BoolVar(&passwordStdin, "password-stdin", false, "set the password from the first line of stdin instead of making a sign-up token")
	f.DurationVar(&ttl, "ttl", time.Hour, "lifetime of the sign-up token")
	f.StringVar(&proxy, "proxy", "", "the address users reach the cluster at, for the printed command (default: the Auth service's address)")
	return cmd
}

func traits(dbUsers, dbNames []string) map[string][]string {
	t := map[string][]string{}
	if len(dbUsers) > 0 {
		t[traitDBUsers] = dbUsers
	}
	if len(dbNames) > 0 {
		t[traitDBNames] = dbNames
	}
	if len(t) == 0 {
		return nil
	}
	return t
}

func (a *app) usersLsCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List users",
		Args:  argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(format, "text", "json"); err != nil {
			return err
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			users, err := c.ListUsers(ctx)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, users)
			}
			rows := make([][]string, 0, len(users))
			for _, u := range users {
				status := "active"
				if u.Pending {
					status = "awaiting sign-up"
				}
				totp := "no"
				if u.HasTOTP {
					totp = "yes"
				}
				rows = append(rows, []string{u.Name, joinOrDash(u.Roles), joinOrDash(u.Traits[traitDBUsers]),
					joinOrDash(u.Traits[traitDBNames]), totp, status, u.Created.UTC().Format("2006-01-02")})
			}
			return table(a.stdout, []string{"NAME", "ROLES", "DB USERS", "DB NAMES", "TOTP", "STATUS", "CREATED"}, rows)
		})(cmd, args)
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func (a *app) usersUpdateCmd() *cobra.Command {
	var roles, dbUsers, dbNames []string
	cmd := &cobra.Command{
		Use:   "update NAME [--roles R1,R2] [--db-users U1,U2] [--db-names D1,D2]",
		Short: "Change a user's roles or database traits (an empty value clears a list)",
		Args:  argNames("the user's name"),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		f := cmd.Flags()
		if !f.Changed("roles") && !f.Changed("db-users") && !f.Changed("db-names") {
			return fmt.Errorf("nothing to change; pass --roles, --db-users or --db-names")
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			u, err := c.GetUser(ctx, args[0])
			if err != nil {
				return err
			}
			if f.Changed("roles") {
				u.Roles = roles
			}
			if u.Traits == nil {
				u.Traits = map[string][]string{}
			}
			if f.Changed("db-users") {
				u.Traits[traitDBUsers] = dbUsers
			}
			if f.Changed("db-names") {
				u.Traits[traitDBNames] = dbNames
			}
			updated, err := c.UpdateUser(ctx, *u)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "User %s updated: roles %s, db users %s, db names %s.\n",
				updated.Name, joinOrDash(updated.Roles), joinOrDash(updated.Traits[traitDBUsers]), joinOrDash(updated.Traits[traitDBNames]))
			return nil
		})(cmd, args)
	}
	f := cmd.Flags()
	f.StringSliceVar(&roles, "roles", nil, "the user's roles, comma-separated")
	f.StringSliceVar(&dbUsers, "db-users", nil, "database users the user may connect as")
	f.StringSliceVar(&dbNames, "db-names", nil, "database names the user may open")
	return cmd
}

func (a *app) usersRmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a user",
		Args:  argNames("the user's name"),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			if err := c.DeleteUser(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "User %s removed. Certificates already issued stay valid until they expire; lock the user (pctl locks add --user %s) to cut them off now.\n", args[0], args[0])
			return nil
		})(cmd, args)
	}
	return cmd
}
