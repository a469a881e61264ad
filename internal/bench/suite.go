package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Groups of workloads, for [Config.Only].
var Groups = []string{"pgbench", "latency", "copy", "mysql", "sessions", "agents"}

// Config configures a suite run. ModuleDir is required.
type Config struct {
	// ModuleDir is the repository's root (where go.mod is): the daemon is
	// built from its cmd/portcullis.
	ModuleDir string
	// PortcullisBin, if set, is a daemon binary to use instead of building
	// one.
	PortcullisBin string
	// WorkDir holds everything the run makes (default: a new directory
	// under os.TempDir(), removed at the end unless Keep).
	WorkDir string
	Keep    bool
	// Quick is the short version: short rounds, a 25 MiB COPY, 1,000
	// sessions, 200 agents.
	Quick bool
	// Rounds per side of each workload (default 3), after Warmups warm-up
	// rounds per side (default 1).
	Rounds, Warmups int
	// Only limits the run to these groups (see Groups); empty runs all.
	Only []string
	// AgentsCommand is how to start the process that runs many agents:
	// the suite binary and its hidden subcommand, e.g.
	// [os.Executable(), "agents"]. It is given -n, -proxy and -pin, and the
	// token in AgentsTokenEnv.
	AgentsCommand []string
	// Command is the command line, for the report.
	Command string
	// Log receives progress (default: discarded).
	Log *slog.Logger
	// ProfileDir, if set, turns on the daemons' diagnostics endpoints and
	// receives a CPU profile of the Auth service, the proxy and the agent
	// taken during the first measured Portcullis round of each workload
	// (<workload>.<daemon>.pprof, for go tool pprof), and a heap profile
	// of the proxy and the agent while the idle sessions are held.
	ProfileDir string

	// Overrides for tests and experiments; zero means the default of
	// Quick or full.
	Duration  time.Duration // per measured round
	CopyBytes int64
	Sessions  []SessionCount
	Agents    int
}

// SessionCount is one idle-sessions measurement.
type SessionCount struct {
	Protocol string // "postgres" or "mysql"
	N        int
}

func (c *Config) duration() time.Duration {
	switch {
	case c.Duration > 0:
		return c.Duration
	case c.Quick:
		return 3 * time.Second
	}
	return 15 * time.Second
}

// warmup is the length of a warm-up round.
func (c *Config) warmup() time.Duration { return max(time.Second, c.duration()/3) }

func (c *Config) copyBytes() int64 {
	switch {
	case c.CopyBytes > 0:
		return c.CopyBytes
	case c.Quick:
		return 25 << 20
	}
	return 100 << 20
}

func (c *Config) sessions() []SessionCount {
	switch {
	case c.Sessions != nil:
		return c.Sessions
	case c.Quick:
		return []SessionCount{{"postgres", 1000}, {"mysql", 1000}}
	}
	return []SessionCount{{"postgres", 1000}, {"mysql", 1000}, {"mysql", 10000}}
}

func (c *Config) agents() int {
	switch {
	case c.Agents > 0:
		return c.Agents
	case c.Quick:
		return 200
	}
	return 1000
}

// scale is pgbench's scale factor.
func (c *Config) scale() int { return 10 }

func (c *Config) rounds() int {
	if c.Rounds > 0 {
		return c.Rounds
	}
	return 3
}

func (c *Config) warmups() int {
	if c.Warmups > 0 {
		return c.Warmups
	}
	return 1
}

func (c *Config) runs(group string) bool { return len(c.Only) == 0 || slices.Contains(c.Only, group) }

// check validates the configuration.
func (c *Config) check() error {
	if c.ModuleDir == "" && c.PortcullisBin == "" {
		return errors.New("bench: Config.ModuleDir is required (the repository's root) unless PortcullisBin is set")
	}
	if c.Rounds < 0 || c.Warmups < 0 {
		return errors.New("bench: Config.Rounds and Warmups must not be negative")
	}
	for _, g := range c.Only {
		if !slices.Contains(Groups, g) {
			return fmt.Errorf("bench: unknown workload group %q; the groups are %s", g, strings.Join(Groups, ", "))
		}
	}
	for _, s := range c.Sessions {
		if s.Protocol != "postgres" && s.Protocol != "mysql" || s.N <= 0 {
			return fmt.Errorf("bench: Config.Sessions: %+v", s)
		}
	}
	return nil
}

// maxSessions is the largest idle-session count per protocol.
func (c *Config) maxSessions(protocol string) int {
	n := 0
	if c.runs("sessions") {
		for _, s := range c.sessions() {
			if s.Protocol == protocol {
				n = max(n, s.N)
			}
		}
	}
	return n
}

// Run starts the databases and the cluster, runs the workloads and returns
// the report. A workload that fails is reported with its error and the
// run goes on; the error is for what stops the whole run.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	limit, err := RaiseFileLimit()
	if err != nil {
		return nil, err
	}
	if need := uint64(cfg.maxSessions("mysql") + 1000); limit < need {
		log.Warn(fmt.Sprintf("the open file limit is %d; %d sessions need about %d", limit, cfg.maxSessions("mysql"), need))
	}
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		return nil, fmt.Errorf("bench: pgbench is not installed (Debian package postgresql-client): %w", err)
	}

	dir := cfg.WorkDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "portcullis-bench-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if cfg.Keep {
		log.Info("work directory " + dir + " is kept")
	} else {
		defer os.RemoveAll(dir)
	}

	bin := cfg.PortcullisBin
	if bin == "" {
		log.Info("building cmd/portcullis")
		if bin, err = buildPortcullis(ctx, cfg.ModuleDir, dir); err != nil {
			return nil, err
		}
	}

	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}

	pgConns := max(200, cfg.maxSessions("postgres")+200)
	myConns := max(200, cfg.maxSessions("mysql")+200)
	c, err := startCluster(ctx, clusterConfig{
		dir: dir, bin: bin, logLevel: "warn", log: log, diag: cfg.ProfileDir != "",
		pgSettings: map[string]string{
			"max_connections": fmt.Sprint(pgConns),
			"shared_buffers":  "256MB",
		},
		mySettings: map[string]string{
			"max-connections":         fmt.Sprint(myConns),
			"max-connect-errors":      "1000000",
			"open-files-limit":        fmt.Sprint(limit),
			"table-open-cache":        "400",
			"innodb-buffer-pool-size": "256M",
		},
	})
	if err != nil {
		return nil, err
	}
	defer c.close()

	rep := &Report{Command: cfg.Command, Date: began, Quick: cfg.Quick, Rounds: cfg.rounds()}
	rep.Machine = LocalMachine(ctx, cfg.ModuleDir)
	rep.Machine.MariaDB = c.my.Version
	if v, err := pgVersion(ctx, c); err == nil {
		rep.Machine.PostgreSQL = v
	}
	if out, err := exec.CommandContext(ctx, pgbench, "--version").Output(); err == nil {
		rep.Machine.Pgbench = strings.TrimSpace(string(out))
	}

	r := &runner{c: c, cfg: &cfg, pgbench: pgbench, rounds: cfg.rounds(), warmups: cfg.warmups()}
	if cfg.ProfileDir != "" {
		r.prof = &profiler{dir: cfg.ProfileDir, daemons: []*daemon{c.auth, c.proxy, c.agent}, client: &http.Client{}}
	}
	add := func(res ...Result) {
		for _, x := range res {
			if x.Error != "" {
				log.Warn(x.Name + " failed: " + x.Error)
			}
		}
		rep.Workloads = append(rep.Workloads, res...)
	}

	if cfg.runs("pgbench") || cfg.runs("copy") {
		if err := r.preparePostgres(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.runs("pgbench") {
		for _, clients := range []int{1, 8, 64} {
			add(r.pgbenchWorkload(ctx, clients, false))
		}
	}
	if cfg.runs("latency") {
		add(r.latencyWorkload(ctx)...)
	}
	if cfg.runs("pgbench") {
		add(r.pgbenchWorkload(ctx, 8, true))
	}
	if cfg.runs("copy") {
		add(r.copyWorkload(ctx))
	}
	if cfg.runs("mysql") {
		if err := r.prepareMySQL(ctx); err != nil {
			return nil, err
		}
		add(r.mysqlPointWorkload(ctx, 1), r.mysqlPointWorkload(ctx, 8), r.mysqlBigWorkload(ctx))
	}
	if cfg.runs("sessions") {
		for _, s := range cfg.sessions() {
			add(r.sessionsWorkload(ctx, s.Protocol, s.N))
		}
	}
	if cfg.runs("agents") {
		add(r.agentsWorkload(ctx, cfg.agents())...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.Elapsed = math.Round(time.Since(began).Seconds())
	return rep, nil
}

func pgVersion(ctx context.Context, c *cluster) (string, error) {
	conn, err := pgx.Connect(ctx, c.pg.AdminDSN(""))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var v string
	err = conn.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return "PostgreSQL " + v, err
}

// ModuleRoot is the directory of the main module that the go command sees
// from dir.
func ModuleRoot(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOMOD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("bench: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("bench: not inside a Go module; run the suite from the repository")
	}
	return filepath.Dir(gomod), nil
}
