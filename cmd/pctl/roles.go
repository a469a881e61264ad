package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
)

func (a *app) rolesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "roles", Short: "Manage the cluster's roles"}
	cmd.AddCommand(a.rolesPutCmd(false), a.rolesPutCmd(true), a.rolesLsCmd(), a.rolesGetCmd(), a.rolesRmCmd())
	return cmd
}

// rolesPutCmd is `roles create` (update false) or `roles update`.
func (a *app) rolesPutCmd(update bool) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "create -f role.yaml",
		Short: "Create roles from a YAML file (- for stdin)",
		Args:  argNames(),
	}
	if update {
		cmd.Use, cmd.Short = "update -f role.yaml", "Replace roles (or create them) from a YAML file (- for stdin)"
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		roles, err := a.readRoles(file)
		if err != nil {
			return err
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			for _, r := range roles {
				verb := "created"
				if update {
					err, verb = c.UpsertRole(ctx, r), "updated"
				} else {
					err = c.CreateRole(ctx, r)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Role %s %s.\n", r.Metadata.Name, verb)
			}
			return nil
		})(cmd, args)
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the role file, YAML (several roles separated by ---)")
	return cmd
}

// readRoles parses a role file locally, so that mistakes are reported with
// their line before anything is sent.
func (a *app) readRoles(file string) ([]*policy.Role, error) {
	if file == "" {
		return nil, fmt.Errorf("pass the role file with -f role.yaml (or -f - for stdin)")
	}
	var (
		data []byte
		err  error
	)
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(a.stdin, policy.MaxRoleBytes+1))
		file = "stdin"
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the role file: %w", err)
	}
	roles, err := policy.ParseRoles(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", file, message(err))
	}
	return roles, nil
}

func (a *app) rolesLsCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List roles",
		Args:  argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(format, "text", "yaml", "json"); err != nil {
			return err
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			roles, err := c.ListRoles(ctx)
			if err != nil {
				return err
			}
			switch format {
			case "json":
				return writeJSON(a.stdout, roles)
			case "yaml":
				return a.writeRolesYAML(roles...)
			}
			rows := make([][]string, 0, len(roles))
			for _, r := range roles {
				rows = append(rows, []string{r.Metadata.Name, orDash(r.Metadata.Description)})
			}
			return table(a.stdout, []string{"NAME", "DESCRIPTION"}, rows)
		})(cmd, args)
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, yaml or json")
	return cmd
}

func (a *app) writeRolesYAML(roles ...*policy.Role) error {
	out, err := policy.MarshalRoleYAML(roles...)
	if err != nil {
		return err
	}
	_, err = a.stdout.Write(out)
	return err
}

func (a *app) rolesGetCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a role as YAML, ready to edit and pass to roles update",
		Args:  argNames("the role's name"),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(format, "yaml", "json"); err != nil {
			return err
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			r, err := c.GetRole(ctx, args[0])
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, r)
			}
			return a.writeRolesYAML(r)
		})(cmd, args)
	}
	cmd.Flags().StringVar(&format, "format", "yaml", "output format: yaml or json")
	return cmd
}

func (a *app) rolesRmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a role that no user holds",
		Args:  argNames("the role's name"),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			if err := c.DeleteRole(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Role %s removed.\n", args[0])
			return nil
		})(cmd, args)
	}
	return cmd
}
