package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/hostcert"
	"github.com/portcullis-db/portcullis/dbagent"
)

// AgentsTokenEnv carries the join token to the agents child process, so
// that it is not on a command line.
const AgentsTokenEnv = "PORTCULLIS_BENCH_JOIN_TOKEN"

// AgentsConfig configures [RunAgents]: many database agents in one
// process, all joined to one proxy.
type AgentsConfig struct {
	N         int    // how many agents
	ProxyAddr string // the proxy's public address
	Token     string // a reusable db join token
	CAPin     string // the cluster's host CA pin
	// HeartbeatInterval of each agent (default: dbagent's, 10s).
	HeartbeatInterval time.Duration
	// JoinParallel is how many agents join at once (default 8).
	JoinParallel int
}

// AgentsReport is a line RunAgents writes whenever the number of agents
// with a live tunnel changes (at most every 50ms, and at once when it
// reaches N): T is when the count last changed, in Unix nanoseconds.
type AgentsReport struct {
	T         int64  `json:"t"`
	Joined    int    `json:"joined"`
	Connected int    `json:"connected"`
	Error     string `json:"error,omitempty"`
}

// agentsState tracks which agents have a live tunnel.
type agentsState struct {
	mu      sync.Mutex
	up      map[string]bool
	changed int64 // UnixNano of the last change
	signal  chan struct{}
}

func newAgentsState() *agentsState {
	return &agentsState{up: map[string]bool{}, signal: make(chan struct{}, 1)}
}

func (s *agentsState) set(hostID string, up bool) {
	s.mu.Lock()
	if s.up[hostID] != up {
		if up {
			s.up[hostID] = true
		} else {
			delete(s.up, hostID)
		}
		s.changed = time.Now().UnixNano()
	}
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *agentsState) snapshot() (connected int, changed int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.up), s.changed
}

// Messages of package tunnel's agent that say a tunnel came up or went
// down. dbagent.Service.TunnelStatus tells too, but only when asked:
// polling a thousand agents finely enough to time a reconnection would
// load the machine under measurement, while the log says at the moment.
const (
	msgTunnelUp   = "tunnel up"
	msgTunnelDown = "tunnel down; reconnecting"
)

// tunnelWatch is a zap core that sees only the tunnel agent's up and down
// messages and records them, by the host_id field, in state.
type tunnelWatch struct {
	fields []zapcore.Field
	state  *agentsState
}

func (w *tunnelWatch) Enabled(l zapcore.Level) bool { return l >= zapcore.InfoLevel }

func (w *tunnelWatch) With(fields []zapcore.Field) zapcore.Core {
	return &tunnelWatch{fields: append(append([]zapcore.Field(nil), w.fields...), fields...), state: w.state}
}

func (w *tunnelWatch) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == msgTunnelUp || e.Message == msgTunnelDown {
		return ce.AddCore(e, w)
	}
	return ce
}

func (w *tunnelWatch) Write(e zapcore.Entry, fields []zapcore.Field) error {
	for _, fs := range [][]zapcore.Field{fields, w.fields} {
		for _, f := range fs {
			if f.Key == "host_id" && f.Type == zapcore.StringType {
				w.state.set(f.String, e.Message == msgTunnelUp)
				return nil
			}
		}
	}
	return nil
}

func (w *tunnelWatch) Sync() error { return nil }

// RunAgents joins cfg.N database agents to the proxy (each its own host
// with its own credentials, serving one database that is never used) and
// runs them until ctx is done, writing an [AgentsReport] line to out
// whenever the number connected changes.
func RunAgents(ctx context.Context, cfg AgentsConfig, out io.Writer) error {
	if cfg.N <= 0 || cfg.ProxyAddr == "" || cfg.Token == "" {
		return errors.New("bench: RunAgents needs N, ProxyAddr and Token")
	}
	par := cfg.JoinParallel
	if par <= 0 {
		par = 8
	}
	state := newAgentsState()
	enc := json.NewEncoder(out)
	var encMu sync.Mutex
	report := func(r AgentsReport) {
		encMu.Lock()
		defer encMu.Unlock()
		enc.Encode(r)
	}

	creds := make([]*hostcert.Credentials, cfg.N)
	var next, joined atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, par)
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.N || ctx.Err() != nil {
					return
				}
				jctx, cancel := context.WithTimeout(ctx, time.Minute)
				c, err := hostcert.Join(jctx, cfg.ProxyAddr, cfg.Token, cfg.CAPin,
					hostcert.Request{Role: ca.SystemRoleDatabase, HostID: agentsHostID(i)}, authclient.WithTimeout(time.Minute))
				cancel()
				if err != nil {
					errc <- fmt.Errorf("agent %d: join: %w", i, err)
					return
				}
				creds[i] = c
				joined.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		report(AgentsReport{T: time.Now().UnixNano(), Joined: int(joined.Load()), Error: err.Error()})
		return err
	}
	report(AgentsReport{T: time.Now().UnixNano(), Joined: cfg.N})

	log := zap.New(&tunnelWatch{state: state})
	for i := range cfg.N {
		svc := &dbagent.Service{
			Credentials: hostcert.NewManager(creds[i]),
			ProxyAddrs:  []string{cfg.ProxyAddr},
			Databases: []dbagent.Database{{
				Name: fmt.Sprintf("many-%04d", i), Protocol: "postgres", URI: "127.0.0.1:9",
				Labels: map[string]string{"bench": "agents"},
			}},
			HeartbeatInterval: cfg.HeartbeatInterval,
			Logger:            log,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.Run(ctx); err != nil && ctx.Err() == nil {
				report(AgentsReport{T: time.Now().UnixNano(), Joined: cfg.N, Error: err.Error()})
			}
		}()
	}

	last := -1
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
		case <-state.signal:
			if n, _ := state.snapshot(); n != cfg.N && n != 0 {
				continue // wait for the tick, unless a boundary was reached
			}
		}
		n, changed := state.snapshot()
		if n != last {
			last = n
			report(AgentsReport{T: changed, Joined: cfg.N, Connected: n})
		}
	}
}

func agentsHostID(i int) string { return fmt.Sprintf("bench-many-%05d", i) }

// agentsChild is the parent's handle on the agents process.
type agentsChild struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	reports chan AgentsReport
	exited  chan struct{}
	err     error
}

// startAgentsChild starts argv (the suite binary's agents subcommand) with
// the token in the environment; the child exits when its stdin closes.
func startAgentsChild(argv []string, token, logPath string) (*agentsChild, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), AgentsTokenEnv+"="+token)
	cmd.Stderr = logf
	cmd.Dir = filepath.Dir(logPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	a := &agentsChild{cmd: cmd, stdin: stdin, reports: make(chan AgentsReport, 1024), exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // Pdeathsig follows the forking thread
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r AgentsReport
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				a.reports <- r
			}
		}
		a.err = cmd.Wait()
		close(a.reports)
		close(a.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("bench: start the agents process: %w", err)
	}
	return a, nil
}

// waitFor reads reports until ok accepts one, the child exits or reports
// an error, or timeout passes.
func (a *agentsChild) waitFor(ctx context.Context, timeout time.Duration, what string, ok func(AgentsReport) bool) (AgentsReport, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var last AgentsReport
	for {
		select {
		case r, more := <-a.reports:
			if !more {
				return last, fmt.Errorf("bench: the agents process exited (%v) waiting for %s", a.err, what)
			}
			if r.Error != "" {
				return r, fmt.Errorf("bench: agents: %s", r.Error)
			}
			last = r
			if ok(r) {
				return r, nil
			}
		case <-t.C:
			return last, fmt.Errorf("bench: waited %v for %s; last report: %d joined, %d connected", timeout, what, last.Joined, last.Connected)
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}

// stop closes the child's stdin and waits, killing it after a while.
func (a *agentsChild) stop() {
	a.stdin.Close()
	go func() {
		for range a.reports {
		}
	}()
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.exited
	}
}

// agentsWorkload runs n agents against the proxy: the proxy's memory per
// connected agent, then the time for all to reconnect after the proxy
// process restarts.
func (r *runner) agentsWorkload(ctx context.Context, n int) []Result {
	memID, memName := "agents_proxy_memory", fmt.Sprintf("%s agents on one proxy: proxy memory", thousands(n))
	recID, recName := "agents_reconnect", fmt.Sprintf("%s agents: all reconnected after a proxy restart", thousands(n))
	mem, rec, err := r.measureAgents(ctx, n)
	if err != nil {
		return []Result{Failed(memID, memName, "KiB/agent", Aim{}, err), Failed(recID, recName, "s", Aim{}, err)}
	}
	mem.ID, mem.Name, rec.ID, rec.Name = memID, memName, recID, recName
	return []Result{mem, rec}
}

func (r *runner) measureAgents(ctx context.Context, n int) (mem, rec Result, err error) {
	c := r.c
	if len(r.cfg.AgentsCommand) == 0 {
		return mem, rec, errors.New("bench: Config.AgentsCommand is not set")
	}
	c.logf("agents: %d agents in one process against a fresh proxy", n)
	if err := c.freshProcesses(ctx); err != nil {
		return mem, rec, err
	}
	if err := sleep(ctx, settleBefore); err != nil {
		return mem, rec, err
	}
	before, err := c.readRSS(ctx)
	if err != nil {
		return mem, rec, err
	}
	tok, err := c.admin.CreateToken(ctx, authclient.CreateTokenRequest{Type: "db", TTL: 2 * time.Hour})
	if err != nil {
		return mem, rec, err
	}
	argv := append(append([]string(nil), r.cfg.AgentsCommand...), "-n", fmt.Sprint(n), "-proxy", c.proxyAddr, "-pin", c.pin)
	child, err := startAgentsChild(argv, tok.Secret, filepath.Join(c.cfg.dir, "agents.log"))
	if err != nil {
		return mem, rec, err
	}
	defer child.stop()

	start := time.Now()
	timeout := 2*time.Minute + time.Duration(n)*100*time.Millisecond
	joined, err := child.waitFor(ctx, timeout, "the agents to join", func(r AgentsReport) bool { return r.Joined == n })
	if err != nil {
		return mem, rec, err
	}
	joinTook := time.Unix(0, joined.T).Sub(start)
	all, err := child.waitFor(ctx, timeout, fmt.Sprintf("all %d agents connected", n), func(r AgentsReport) bool { return r.Connected == n })
	if err != nil {
		return mem, rec, err
	}
	connectTook := time.Unix(0, all.T).Sub(time.Unix(0, joined.T))
	c.logf("agents: %d joined in %v, all connected %v later", n, joinTook.Round(time.Millisecond), connectTook.Round(time.Millisecond))
	if err := sleep(ctx, settleAfter); err != nil {
		return mem, rec, err
	}
	after, err := c.readRSS(ctx)
	if err != nil {
		return mem, rec, err
	}
	perAgent := PerSession(before.proxy, after.proxy, n)
	mem = NewResult("", "", "KiB/agent", nanFloat(), perAgent, Aim{}, true, false)
	mem.Note = fmt.Sprintf("proxy RSS %s -> %s; %d agents joined in %.1fs and all connected %.1fs later",
		FormatBytes(before.proxy), FormatBytes(after.proxy), n, joinTook.Seconds(), connectTook.Seconds())

	// Restart the proxy: stop it, wait until the agents have noticed, start
	// it again, and time until every agent's tunnel is back up.
	c.logf("agents: restarting the proxy")
	stopped := time.Now()
	if err := c.proxy.stop(daemonStop); err != nil {
		return mem, rec, err
	}
	stopTook := time.Since(stopped)
	if _, err := child.waitFor(ctx, time.Minute, "the agents to notice the proxy stopped", func(r AgentsReport) bool { return r.Connected == 0 }); err != nil {
		return mem, rec, err
	}
	restarted := time.Now()
	if err := c.proxy.start(); err != nil {
		return mem, rec, err
	}
	if err := c.waitProxy(ctx); err != nil {
		return mem, rec, err
	}
	ready := time.Since(restarted)
	back, err := child.waitFor(ctx, timeout, fmt.Sprintf("all %d agents reconnected", n), func(r AgentsReport) bool { return r.Connected == n })
	if err != nil {
		return mem, rec, err
	}
	took := time.Unix(0, back.T).Sub(restarted)
	c.logf("agents: all %d reconnected %v after the proxy restarted", n, took.Round(time.Millisecond))
	rec = NewResult("", "", "s", nanFloat(), took.Seconds(), Aim{}, true, false)
	rec.Note = fmt.Sprintf("from the new proxy process's start; it answered after %.2fs; the old one took %.1fs to stop; "+
		"agents back off with full jitter (250ms doubling, 30s cap)", ready.Seconds(), stopTook.Seconds())
	// The suite's own agent reconnects too; later workloads need it.
	return mem, rec, c.waitReachable(ctx)
}

// AgentsMain is the suite binary's hidden `agents` subcommand (args
// after it): -n, -proxy, -pin and -heartbeat, the token in
// AgentsTokenEnv. It runs [RunAgents], reporting on stdout, until stdin
// closes or ctx ends, and returns the exit code.
func AgentsMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("suite agents", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 1000, "how many agents")
	proxy := fs.String("proxy", "", "the proxy's public address")
	pin := fs.String("pin", "", "the cluster's host CA pin")
	heartbeat := fs.Duration("heartbeat", 0, "each agent's heartbeat interval (default: the agent's own)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, stdin) // the parent closes it to stop us
		cancel()
	}()
	err := RunAgents(ctx, AgentsConfig{
		N: *n, ProxyAddr: *proxy, Token: os.Getenv(AgentsTokenEnv), CAPin: *pin, HeartbeatInterval: *heartbeat,
	}, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "suite agents:", err)
		return 1
	}
	return 0
}
