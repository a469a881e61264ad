package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/client"
)

func (a *app) dbCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "List databases, get their certificates and connect with psql or mysql",
		Long: "Reach the cluster's databases through the proxy. `pcl db login NAME` gets a certificate for one\n" +
			"database, db user and db name (a route); `pcl db connect NAME` starts psql (or mysql) with it.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.dbListCmd(), a.dbLoginCmd(), a.dbConnectCmd(), a.dbConfigCmd(), a.dbEnvCmd(), a.dbLogoutCmd())
	return cmd
}

// profile loads the current login, with pcl's clock.
func (a *app) profile() (*client.Profile, error) {
	home, err := a.home()
	if err != nil {
		return nil, err
	}
	p, err := client.LoadProfile(home)
	if err != nil {
		return nil, err
	}
	p.Clock = a.now
	return p, nil
}

// oneDatabase takes exactly one positional argument, the database's name.
func oneDatabase(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 0:
		return fmt.Errorf("name the database; usage: %s (pcl db ls lists them)", cmd.UseLine())
	case 1:
		return nil
	default:
		return fmt.Errorf("%s takes one database name, got %q; usage: %s", cmd.CommandPath(), args, cmd.UseLine())
	}
}

// oneDatabaseThenArgs takes the database's name, then anything after --.
func oneDatabaseThenArgs(cmd *cobra.Command, args []string) error {
	if n := cmd.ArgsLenAtDash(); n >= 0 {
		args = args[:n]
	}
	return oneDatabase(cmd, args)
}

// atMostOneDatabase takes an optional database name.
func atMostOneDatabase(cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("%s takes at most one database name, got %q; usage: %s", cmd.CommandPath(), args, cmd.UseLine())
	}
	return nil
}

func checkFormat(format string, allowed ...string) error {
	for _, f := range allowed {
		if format == f {
			return nil
		}
	}
	return fmt.Errorf("--format %q is not one of %s", format, strings.Join(allowed, ", "))
}

func (a *app) dbListCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "ls [--format text|json]",
		Aliases: []string{"list"},
		Short:   "List the databases your roles allow",
		Long:    "List the databases your roles allow. Those you are logged in to are marked with >.",
		Args:    noArgs,
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(format, "text", "json"); err != nil {
			return err
		}
		p, err := a.profile()
		if err != nil {
			return err
		}
		dbs, err := p.Databases(cmd.Context())
		if err != nil {
			return err
		}
		if format == "json" {
			type entry struct {
				Name        string            `json:"name"`
				Protocol    string            `json:"protocol"`
				Labels      map[string]string `json:"labels"`
				Description string            `json:"description"`
			}
			out := make([]entry, len(dbs))
			for i, db := range dbs {
				labels := db.Labels
				if labels == nil {
					labels = map[string]string{}
				}
				out[i] = entry{Name: db.Name, Protocol: db.Protocol, Labels: labels, Description: db.Description}
			}
			return writeJSON(a.stdout, out)
		}
		routes, err := p.DatabaseRoutes()
		if err != nil {
			return err
		}
		logged := make(map[string]client.DatabaseRoute, len(routes))
		for _, r := range routes {
			logged[r.Name] = r
		}
		rows := make([][]string, len(dbs))
		for i, db := range dbs {
			name := db.Name
			if r, ok := logged[db.Name]; ok {
				name = "> " + db.Name + " (user: " + r.DBUser
				if r.DBName != "" {
					name += ", db: " + r.DBName
				}
				name += ")"
			}
			rows[i] = []string{name, db.Protocol, formatLabels(db.Labels), db.Description}
		}
		return table(a.stdout, []string{"NAME", "PROTOCOL", "LABELS", "DESCRIPTION"}, rows)
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func formatLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

// table writes rows under a header in aligned columns, without trailing
// blanks.
func table(w io.Writer, header []string, rows [][]string) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var out strings.Builder
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line != "" {
			out.WriteString(strings.TrimRight(line, " \n") + "\n")
		}
	}
	_, err := io.WriteString(w, out.String())
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// routeFlags are --db-user and --db-name.
type routeFlags struct{ dbUser, dbName string }

func (f *routeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dbUser, "db-user", "", "the database user to log in as (default: the one your login allows)")
	cmd.Flags().StringVar(&f.dbName, "db-name", "", "the database to open (default: the one your login allows)")
}

func (a *app) dbLoginCmd() *cobra.Command {
	var f routeFlags
	cmd := &cobra.Command{
		Use:   "login NAME [--db-user USER] [--db-name DB]",
		Short: "Get a certificate for a database, db user and db name",
		Long: "Get a certificate for a database, db user and db name (a route), stored in the profile until\n" +
			"it expires (never after your login). Without --db-user/--db-name, the db user and db name\n" +
			"your login allows are used when there is exactly one.",
		Args: oneDatabase,
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := a.profile()
		if err != nil {
			return err
		}
		r, err := p.DatabaseLogin(cmd.Context(), args[0], f.dbUser, f.dbName)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Logged in to database %s (%s) as db user %s", r.Name, r.Protocol, r.DBUser)
		if r.DBName != "" {
			fmt.Fprintf(a.stdout, ", db name %s", r.DBName)
		}
		fmt.Fprintf(a.stdout, ".\nThe certificate is valid until %s (in %s).\nConnect with: pcl db connect %s\n",
			r.Expires.Local().Format("2006-01-02 15:04 MST"), shortDuration(r.Expires.Sub(a.now())), r.Name)
		return nil
	}
	f.register(cmd)
	return cmd
}

// ensureRoute returns the connection settings of database name, logging
// in to it first when there is no usable route certificate or when the
// flags ask for another db user or db name than the stored route's.
// Flags not given default to the stored route's.
func (a *app) ensureRoute(cmd *cobra.Command, p *client.Profile, name string, f routeFlags) (*client.DatabaseConfig, error) {
	ctx := cmd.Context()
	routes, err := p.DatabaseRoutes()
	if err != nil {
		return nil, err
	}
	var prev *client.DatabaseRoute
	for i := range routes {
		if routes[i].Name == name {
			prev = &routes[i]
		}
	}
	if prev != nil {
		if f.dbUser == "" {
			f.dbUser = prev.DBUser
		}
		if f.dbName == "" {
			f.dbName = prev.DBName
		}
		if f.dbUser == prev.DBUser && f.dbName == prev.DBName {
			cfg, err := p.DatabaseConfig(ctx, name)
			if !client.IsRouteError(err) {
				return cfg, err
			}
		}
	}
	if _, err := p.DatabaseLogin(ctx, name, f.dbUser, f.dbName); err != nil {
		return nil, err
	}
	return p.DatabaseConfig(ctx, name)
}

func (a *app) dbConnectCmd() *cobra.Command {
	var f routeFlags
	cmd := &cobra.Command{
		Use:   "connect NAME [--db-user USER] [--db-name DB] [-- ARGS...]",
		Short: "Connect to a database with psql or mysql",
		Long: "Start psql (PostgreSQL) or mysql/mariadb (MySQL) connected to the database through the proxy,\n" +
			"logging in to the database first when needed. ARGS after -- go to the client, e.g.\n" +
			"pcl db connect pg1 -- -c 'select 1'. pcl exits with the client's exit code.",
		Args: oneDatabaseThenArgs,
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var extra []string
		if n := cmd.ArgsLenAtDash(); n >= 0 {
			extra = args[n:]
		}
		p, err := a.profile()
		if err != nil {
			return err
		}
		cfg, err := a.ensureRoute(cmd, p, args[0], f)
		if err != nil {
			return err
		}
		dbc, err := cfg.Command(extra, client.WithLookPath(a.lookPath))
		if err != nil {
			return err
		}
		c, err := dbc.Cmd()
		if err != nil {
			return err
		}
		c.Stdin, c.Stdout, c.Stderr = a.stdin, a.stdout, a.stderr
		code, err := a.runClient(c)
		if err != nil {
			return err
		}
		if code != 0 {
			if note := cfg.GuessNote(); note != "" {
				fmt.Fprintf(a.stderr, "note: %s\n", note)
			}
			return &exitCodeError{code: code}
		}
		return nil
	}
	f.register(cmd)
	return cmd
}

// runClient runs a database client attached to pcl's streams and returns
// its exit code (128+N when signal N ended it). psql and mysql handle
// Ctrl-C themselves, cancelling the running statement, so pcl ignores it
// while they run rather than dying under them.
func runClient(c *exec.Cmd) (int, error) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("cannot run %s: %w", c.Path, err)
	}
	return 0, nil
}

func (a *app) dbConfigCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "config NAME [--format text|json|cmd]",
		Short: "Print how to connect to a database you are logged in to",
		Long: "Print the proxy's address, the CA, certificate and key files and the command line for a\n" +
			"database you are logged in to (pcl db login NAME), for configuring other clients. --format cmd\n" +
			"prints only the command line, quoted for the shell.",
		Args: oneDatabase,
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(format, "text", "json", "cmd"); err != nil {
			return err
		}
		p, err := a.profile()
		if err != nil {
			return err
		}
		cfg, err := p.DatabaseConfig(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		dbc, err := cfg.Command(nil, client.WithLookPath(a.lookPath))
		if err != nil {
			return err
		}
		switch format {
		case "json":
			return writeJSON(a.stdout, struct {
				*client.DatabaseConfig
				Command string `json:"command"`
			}{cfg, dbc.String()})
		case "cmd":
			_, err := fmt.Fprintln(a.stdout, dbc.String())
			return err
		}
		w := a.stdout
		fmt.Fprintf(w, "Name:      %s\n", cfg.Name)
		fmt.Fprintf(w, "Protocol:  %s\n", cfg.Protocol)
		fmt.Fprintf(w, "Host:      %s\n", cfg.Host)
		fmt.Fprintf(w, "Port:      %d\n", cfg.Port)
		fmt.Fprintf(w, "DB user:   %s\n", cfg.DBUser)
		fmt.Fprintf(w, "DB name:   %s\n", cfg.DBName)
		fmt.Fprintf(w, "CA:        %s\n", cfg.CAFile)
		fmt.Fprintf(w, "Cert:      %s\n", cfg.CertFile)
		fmt.Fprintf(w, "Key:       %s\n", cfg.KeyFile)
		fmt.Fprintf(w, "Expires:   %s\n", cfg.Expires.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "Command:   %s\n", dbc.String())
		if note := cfg.GuessNote(); note != "" {
			fmt.Fprintf(w, "Note:      %s\n", note)
		}
		return nil
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json or cmd")
	return cmd
}

func (a *app) dbEnvCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "env NAME",
		Short: "Print the environment that points libpq clients at a database",
		Long: "Print an export line of PGHOST, PGPORT, PGUSER, PGDATABASE and the TLS settings for a\n" +
			"PostgreSQL database you are logged in to, so that psql, pg_dump and friends need no flags:\n" +
			"eval \"$(pcl db env pg1)\".",
		Args: oneDatabase,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.profile()
			if err != nil {
				return err
			}
			cfg, err := p.DatabaseConfig(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			env, err := cfg.Env()
			if err != nil {
				return err
			}
			parts := make([]string, len(env))
			for i, kv := range env {
				k, v, _ := strings.Cut(kv, "=")
				parts[i] = k + "=" + client.ShellQuote(v)
			}
			_, err = fmt.Fprintf(a.stdout, "export %s\n", strings.Join(parts, " "))
			return err
		},
	}
}

func (a *app) dbLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [NAME]",
		Short: "Remove the certificate of a database, or of all databases",
		Args:  atMostOneDatabase,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.profile()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				err := p.DatabaseLogout(args[0])
				if client.IsRouteError(err) {
					return fmt.Errorf("not logged in to database %q; nothing to log out of", args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Logged out of database %s.\n", args[0])
				return nil
			}
			routes, err := p.DatabaseRoutes()
			if err != nil {
				return err
			}
			if err := p.DatabaseLogout(""); err != nil {
				return err
			}
			if len(routes) == 0 {
				fmt.Fprintln(a.stdout, "Not logged in to any database.")
			}
			for _, r := range routes {
				fmt.Fprintf(a.stdout, "Logged out of database %s.\n", r.Name)
			}
			return nil
		},
	}
}
