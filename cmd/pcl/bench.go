package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/client/bench"
)

// benchFlags are pcl bench's flags after the route's.
type benchFlags struct {
	connect     bool
	concurrency int
	duration    time.Duration
	query       string
	direct      string
	format      string
}

// interruptedCode is pcl's exit code when Ctrl-C cut a benchmark short
// (after it printed what it measured), as shells report SIGINT.
const interruptedCode = 130

func (a *app) benchCmd() *cobra.Command {
	var rf routeFlags
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench NAME [--db-user U] [--db-name D] [--connect] [--concurrency N] [--duration T] [--query Q] [--direct DSN] [--format text|json]",
		Short: "Measure a database's latency and throughput through the proxy, and directly",
		Long: "Run a query over and over through the proxy for a while, with --concurrency workers each\n" +
			"keeping its connection (or opening a new one for every query with --connect), and print its\n" +
			"throughput and latency (p50, p90, p99, max, histogram). With --direct DSN the same runs first\n" +
			"against the database directly and both are printed side by side. DSN is a postgres:// URL or\n" +
			"a libpq \"host=... dbname=...\" string, or mysql://USER@HOST:PORT/DB?ssl-ca=F&ssl-cert=F&ssl-key=F.\n" +
			"Ctrl-C stops the run and prints what was measured.",
		Args: oneDatabase,
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error { return a.bench(cmd, args[0], rf, f) }
	rf.register(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&f.connect, "connect", false, "open a new connection for every query (timed with it)")
	fl.IntVar(&f.concurrency, "concurrency", 1, "number of workers, each running one query at a time")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long to measure each run")
	fl.StringVar(&f.query, "query", "SELECT 1", "the query to run; its whole result is read")
	fl.StringVar(&f.direct, "direct", "", "also measure this DSN, directly, first")
	fl.StringVar(&f.format, "format", "text", "output format: text or json")
	return cmd
}

func (a *app) bench(cmd *cobra.Command, name string, rf routeFlags, f benchFlags) error {
	if err := checkFormat(f.format, "text", "json"); err != nil {
		return err
	}
	switch {
	case f.concurrency < 1:
		return fmt.Errorf("--concurrency %d is not a number of workers; give 1 or more", f.concurrency)
	case f.duration <= 0:
		return fmt.Errorf("--duration %v is not a time to measure for; give a positive duration such as 10s", f.duration)
	case strings.TrimSpace(f.query) == "":
		return errors.New("--query is empty; give a statement such as 'SELECT 1'")
	}
	var direct *bench.Target
	if f.direct != "" {
		var err error
		if direct, err = bench.ParseDSN(f.direct); err != nil {
			return fmt.Errorf("--direct: %s", strings.TrimPrefix(err.Error(), "bench: "))
		}
	}
	p, err := a.profile()
	if err != nil {
		return err
	}
	cfg, err := a.ensureRoute(cmd, p, name, rf)
	if err != nil {
		return err
	}
	proxied, err := bench.DatabaseTarget(cfg)
	if err != nil {
		return err
	}
	if direct != nil && direct.Protocol != cfg.Protocol {
		return fmt.Errorf("--direct is a %s DSN but %s is a %s database; give a %s DSN",
			protocolName(direct.Protocol), name, protocolName(cfg.Protocol), protocolName(cfg.Protocol))
	}

	ctx := cmd.Context()
	bc := bench.Config{Concurrency: f.concurrency, Duration: f.duration, Connect: f.connect}
	report := &bench.Report{Title: benchTitle(cfg, f, direct)}
	run := func(runName, where string, t *bench.Target) (*bench.Result, error) {
		fmt.Fprintf(a.stderr, "Measuring %s %s for %s...\n", name, where, f.duration)
		res, err := bench.Run(ctx, bc, t.Dialer(f.query))
		if err == nil {
			report.Runs = append(report.Runs, bench.Named{Name: runName, Result: res})
		}
		return res, err
	}
	if direct != nil {
		res, err := run("direct", "directly at "+direct.Addr(), direct)
		if err != nil {
			return fmt.Errorf("measuring %s directly at %s failed: %s; check the --direct DSN", name, direct.Addr(), oneLine(err))
		}
		if res.Interrupted {
			return a.writeBench(report, f.format, true)
		}
	}
	res, err := run("portcullis", "through the proxy at "+cfg.Addr(), proxied)
	if err != nil {
		if ctx.Err() != nil && len(report.Runs) > 0 {
			return a.writeBench(report, f.format, true)
		}
		msg := fmt.Sprintf("measuring %s through the proxy at %s failed: %s", name, cfg.Addr(), oneLine(err))
		if note := cfg.GuessNote(); note != "" {
			msg += "; " + note
		} else {
			msg += fmt.Sprintf("; pcl db connect %s shows whether the database client gets through", name)
		}
		return errors.New(msg)
	}
	return a.writeBench(report, f.format, res.Interrupted)
}

// writeBench prints the report; interrupted makes pcl exit with
// interruptedCode afterwards.
func (a *app) writeBench(report *bench.Report, format string, interrupted bool) error {
	var err error
	if format == "json" {
		err = report.WriteJSON(a.stdout)
	} else {
		err = report.WriteText(a.stdout)
	}
	if err != nil {
		return err
	}
	if interrupted {
		fmt.Fprintln(a.stderr, "Interrupted: the figures are of the time measured until then.")
		return &exitCodeError{code: interruptedCode}
	}
	return nil
}

// benchTitle says what was measured, where and how.
func benchTitle(cfg *client.DatabaseConfig, f benchFlags, direct *bench.Target) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) as db user %s", cfg.Name, protocolName(cfg.Protocol), cfg.DBUser)
	if cfg.DBName != "" {
		fmt.Fprintf(&b, ", db name %s", cfg.DBName)
	}
	fmt.Fprintf(&b, ": %s\n", strings.Join(strings.Fields(f.query), " "))
	workers := "1 worker"
	if f.concurrency != 1 {
		workers = fmt.Sprintf("%d workers", f.concurrency)
	}
	mode := "each keeping its connection"
	if f.concurrency == 1 {
		mode = "keeping its connection"
	}
	if f.connect {
		mode = "with a new connection for every query"
	}
	fmt.Fprintf(&b, "%s %s, for %s; portcullis: the proxy at %s", workers, mode, f.duration, cfg.Addr())
	if direct != nil {
		fmt.Fprintf(&b, "; direct: %s", direct.Addr())
	}
	return b.String()
}

// protocolName is how a person names a protocol.
func protocolName(protocol string) string {
	switch protocol {
	case client.ProtocolPostgres:
		return "PostgreSQL"
	case client.ProtocolMySQL:
		return "MySQL"
	}
	return protocol
}

// oneLine is err's message on one line, without the bench package's
// prefix.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "bench: ")), " ")
}
