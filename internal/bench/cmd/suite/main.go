// Command suite runs Portcullis's benchmark suite: real PostgreSQL and
// MariaDB servers, a cluster of three processes (Auth, proxy, agent), and
// every workload measured directly and through Portcullis in interleaved
// rounds. See package internal/bench.
//
//	go run ./internal/bench/cmd/suite [--quick] [--format text|json] [--out BENCHMARKS.md] [--rounds N]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "agents" {
		return bench.AgentsMain(ctx, args[1:], os.Stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "the short version (under 5 minutes): short rounds, 25 MiB results, 1,000 sessions, 200 agents")
	format := fs.String("format", "text", "output on stdout: text or json")
	out := fs.String("out", "", "also write the report as markdown to this file (BENCHMARKS.md)")
	rounds := fs.Int("rounds", 3, "measured rounds per side of each workload")
	only := fs.String("only", "", "run only these workload groups, comma-separated: "+strings.Join(bench.Groups, ", "))
	keep := fs.Bool("keep", false, "keep the work directory (daemon logs, data)")
	bin := fs.String("portcullis", "", "use this portcullis daemon binary instead of building cmd/portcullis")
	verbose := fs.Bool("v", false, "log every round's figures")
	profile := fs.String("profile", "", "write CPU profiles of the daemons during each workload's first Portcullis round, and heap profiles with the idle sessions held, into this directory")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./internal/bench/cmd/suite [--quick] [--format text|json] [--out BENCHMARKS.md] [--rounds N] [--only GROUPS] [--profile DIR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "suite: --format is %q; use text or json\n", *format)
		return 2
	}
	if *rounds < 1 {
		fmt.Fprintln(stderr, "suite: --rounds must be at least 1")
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(stderr, "suite:", err)
		return 1
	}
	moduleDir, err := bench.ModuleRoot(ctx, wd)
	if err != nil && *bin == "" {
		fmt.Fprintln(stderr, "suite:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "suite:", err)
		return 1
	}
	cfg := bench.Config{
		ModuleDir:     moduleDir,
		PortcullisBin: *bin,
		Keep:          *keep,
		Quick:         *quick,
		Rounds:        *rounds,
		AgentsCommand: []string{self, "agents"},
		Command:       commandLine(args),
		Log:           log,
		ProfileDir:    *profile,
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "suite:", err)
		return 1
	}
	if *format == "json" {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "suite:", err)
		return 1
	}
	if *out != "" {
		var b bytes.Buffer
		if err := rep.WriteMarkdown(&b); err == nil {
			err = os.WriteFile(*out, b.Bytes(), 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, "suite:", err)
			return 1
		}
		log.Info("wrote " + *out)
	}
	return 0
}

// commandLine is how the run was started, for the report.
func commandLine(args []string) string {
	parts := []string{"go run ./internal/bench/cmd/suite"}
	for _, a := range args {
		parts = append(parts, client.ShellQuote(a))
	}
	return strings.Join(parts, " ")
}
