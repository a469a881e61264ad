package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/ca/authclient"
)

func (a *app) tokensCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Manage join tokens for database agents and proxies"}
	cmd.AddCommand(a.tokensAddCmd(), a.tokensLsCmd(), a.tokensRmCmd())
	return cmd
}

func (a *app) tokensAddCmd() *cobra.Command {
	var (
		typ  string
		ttl  time.Duration
		once bool
	)
	cmd := &cobra.Command{
		Use:   "add --type db|proxy [--ttl 30m] [--once]",
		Short: "Make a join token; its secret is shown once",
		Args:  argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if typ != "db" && typ != "proxy" {
			return fmt.Errorf("--type must be db (a database agent) or proxy")
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, cn *conn) error {
			resp, err := c.CreateToken(ctx, authclient.CreateTokenRequest{Type: typ, TTL: ttl, OneTime: once})
			if err != nil {
				return err
			}
			what := map[string]string{"db": "database agents", "proxy": "proxies"}[typ]
			if resp.OneTime {
				what = map[string]string{"db": "one database agent", "proxy": "one proxy"}[typ]
			}
			fmt.Fprintf(a.stdout, "Join token (ID %s) for %s, valid until %s:\n\n  %s\n\n",
				resp.ID, what, when(resp.Expires, a.now()), resp.Secret)
			fmt.Fprintf(a.stdout, "This is the only time the secret is shown. Put it in the config file of the %s you start\nwith `portcullis start`:\n\n", map[string]string{"db": "database agent", "proxy": "proxy"}[typ])
			fmt.Fprintf(a.stdout, "  join_token: %s\n", resp.Secret)
			fmt.Fprintf(a.stdout, "  ca_pin: %s   # optional: the token alone proves the cluster\n\n", cn.hostPin())
			fmt.Fprintf(a.stdout, "Remove the token early with: pctl tokens rm %s\n", resp.ID)
			return nil
		})(cmd, args)
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "what may join with the token: db or proxy")
	f.DurationVar(&ttl, "ttl", 30*time.Minute, "how long the token is valid")
	f.BoolVar(&once, "once", false, "the first join uses the token up")
	return cmd
}

func (a *app) tokensLsCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List join tokens (their secrets are not kept)",
		Args:  argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(format, "text", "json"); err != nil {
			return err
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			tokens, err := c.ListTokens(ctx)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.stdout, tokens)
			}
			now := a.now()
			rows := make([][]string, 0, len(tokens))
			for _, t := range tokens {
				use := "many"
				if t.OneTime {
					use = "once"
				}
				rows = append(rows, []string{t.ID, t.Type, use, when(t.Expires, now), t.Created.UTC().Format("2006-01-02 15:04 MST")})
			}
			return table(a.stdout, []string{"ID", "TYPE", "USE", "EXPIRES", "CREATED"}, rows)
		})(cmd, args)
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func (a *app) tokensRmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rm ID",
		Short: "Remove a join token by the ID tokens ls prints",
		Args:  argNames("the token's ID"),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			if err := c.DeleteToken(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Join token %s removed.\n", args[0])
			return nil
		})(cmd, args)
	}
	return cmd
}
