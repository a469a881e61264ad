package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientbench "github.com/portcullis-db/portcullis/client/bench"
)

// Settling times before memory is read: Go's heap and the kernel's
// accounting take a moment to reflect what just happened.
const (
	settleBefore = 2 * time.Second
	settleAfter  = 3 * time.Second
	rssSamples   = 3
)

// openParallel is how many sessions are opened at once.
const openParallel = 16

// rssPair is the resident memory of the proxy and the agent processes.
type rssPair struct{ proxy, agent int64 }

// readRSS reads both processes' VmRSS rssSamples times a second apart and
// keeps the median of each.
func (c *cluster) readRSS(ctx context.Context) (rssPair, error) {
	var px, ag []float64
	for i := 0; i < rssSamples; i++ {
		if i > 0 {
			if err := sleep(ctx, time.Second); err != nil {
				return rssPair{}, err
			}
		}
		p, err := RSS(c.proxy.pid())
		if err != nil {
			return rssPair{}, err
		}
		a, err := RSS(c.agent.pid())
		if err != nil {
			return rssPair{}, err
		}
		px, ag = append(px, float64(p)), append(ag, float64(a))
	}
	return rssPair{proxy: int64(Median(px)), agent: int64(Median(ag))}, nil
}

// PerSession is the memory each of n sessions added, in KiB.
func PerSession(before, after int64, n int) float64 {
	if n <= 0 {
		return 0
	}
	return float64(after-before) / 1024 / float64(n)
}

// sessionsWorkload measures the memory of n idle sessions through
// Portcullis to one database: (RSS of proxy and agent with the sessions
// open - before) / n, from freshly started processes. Each session runs
// one SELECT 1 and is then held idle.
func (r *runner) sessionsWorkload(ctx context.Context, protocol string, n int) Result {
	what := "PostgreSQL"
	if protocol == "mysql" {
		what = "MariaDB"
	}
	id := fmt.Sprintf("idle_session_memory_%s_%d", protocol, n)
	name := fmt.Sprintf("idle session memory, %s, %s sessions", what, thousands(n))
	const unit = "KiB/session"
	res, err := r.measureSessions(ctx, protocol, n)
	if err != nil {
		return Failed(id, name, unit, aimIdleMemory, err)
	}
	res.ID, res.Name = id, name
	return res
}

func (r *runner) measureSessions(ctx context.Context, protocol string, n int) (Result, error) {
	c := r.c
	c.logf("idle sessions: %d through Portcullis to %s, from fresh proxy and agent processes", n, protocol)
	if err := c.freshProcesses(ctx); err != nil {
		return Result{}, err
	}
	pg, my, err := c.targets(Portcullis)
	if err != nil {
		return Result{}, err
	}
	target := pg
	if protocol == "mysql" {
		target = my
	}
	dial := target.Dialer("SELECT 1")
	// Warm the caches (certificates, policy) that the first sessions fill.
	warm, err := openSessions(ctx, dial, 2*openParallel)
	closeSessions(warm)
	if err != nil {
		return Result{}, fmt.Errorf("warm-up: %w", err)
	}
	if err := sleep(ctx, settleBefore); err != nil {
		return Result{}, err
	}
	before, err := c.readRSS(ctx)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	conns, err := openSessions(ctx, dial, n)
	defer func() {
		// Close them and give the agent a moment to end them (and record
		// their ends) before the next measurement restarts it.
		closeSessions(conns)
		sleep(ctx, settleBefore)
	}()
	if err != nil {
		return Result{}, fmt.Errorf("%d of %d sessions open: %w", len(conns), n, err)
	}
	took := time.Since(start)
	c.logf("idle sessions: %d open in %v", n, took.Round(time.Millisecond))
	if err := sleep(ctx, settleAfter); err != nil {
		return Result{}, err
	}
	after, err := c.readRSS(ctx)
	if err != nil {
		return Result{}, err
	}
	if r.prof != nil {
		if err := r.prof.heap(ctx, fmt.Sprintf("idle sessions %s %d", protocol, n), c.proxy, c.agent); err != nil {
			c.cfg.log.Warn(err.Error())
		}
	}
	proxy, agent := PerSession(before.proxy, after.proxy, n), PerSession(before.agent, after.agent, n)
	res := NewResult("", "", "KiB/session", nanFloat(), proxy+agent, aimIdleMemory, true, false)
	res.Parts = map[string]float64{"proxy": proxy, "agent": agent}
	res.Note = fmt.Sprintf("RSS proxy %s -> %s, agent %s -> %s; %s sessions opened in %.1fs",
		FormatBytes(before.proxy), FormatBytes(after.proxy), FormatBytes(before.agent), FormatBytes(after.agent),
		thousands(n), took.Seconds())
	return res, nil
}

// openSessions opens n connections with dial, openParallel at a time,
// each running its query once. It returns those it opened, also on error.
func openSessions(ctx context.Context, dial clientbench.Dialer, n int) ([]clientbench.Conn, error) {
	conns := make([]clientbench.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < min(openParallel, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				err := openOne(ctx, dial, &conns[i])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("session %d: %w", i+1, err)
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	open := conns[:0]
	for _, c := range conns {
		if c != nil {
			open = append(open, c)
		}
	}
	if firstErr == nil && len(open) < n {
		firstErr = errors.Join(ctx.Err(), errors.New("interrupted"))
	}
	return open, firstErr
}

func openOne(ctx context.Context, dial clientbench.Dialer, dst *clientbench.Conn) error {
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := dial(dctx)
	if err != nil {
		return err
	}
	if err := conn.Do(dctx); err != nil {
		conn.Close()
		return err
	}
	*dst = conn
	return nil
}

// closeSessions closes conns, openParallel at a time.
func closeSessions(conns []clientbench.Conn) {
	ch := make(chan clientbench.Conn)
	var wg sync.WaitGroup
	for w := 0; w < openParallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				c.Close()
			}
		}()
	}
	for _, c := range conns {
		ch <- c
	}
	close(ch)
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// thousands formats n with commas: 10,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
