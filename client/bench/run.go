package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// A Conn is one connection to the database under test.
type Conn interface {
	// Do runs the query once and reads its whole result.
	Do(ctx context.Context) error
	// Close closes the connection.
	Close() error
}

// A Dialer opens a connection to the database under test. [Run] calls it
// from several goroutines at once.
type Dialer func(ctx context.Context) (Conn, error)

// Config says how [Run] measures. The zero value runs one worker on one
// connection for 10 seconds.
type Config struct {
	// Concurrency is the number of workers, each running one query at a
	// time; 0 means 1.
	Concurrency int
	// Duration is how long to measure; 0 means 10s. Queries under way when
	// it ends are waited for and counted.
	Duration time.Duration
	// Warmup is how long to run before measuring; what runs in it is not
	// counted. 0 means none.
	Warmup time.Duration
	// Connect opens a new connection for every query: one operation is
	// then dial, query and close, and it is timed as a whole. Otherwise
	// each worker dials once, before its first query, and that dial is not
	// timed.
	Connect bool
}

// Defaults of [Config].
const (
	DefaultConcurrency = 1
	DefaultDuration    = 10 * time.Second
)

// withDefaults fills in zero fields and checks the others.
func (c Config) withDefaults() (Config, error) {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	switch {
	case c.Concurrency < 0:
		return c, fmt.Errorf("bench: Config.Concurrency is %d; it must be at least 1", c.Concurrency)
	case c.Duration < 0:
		return c, fmt.Errorf("bench: Config.Duration is %v; it must be positive", c.Duration)
	case c.Warmup < 0:
		return c, fmt.Errorf("bench: Config.Warmup is %v; it must not be negative", c.Warmup)
	}
	return c, nil
}

// Result is what [Run] measured.
type Result struct {
	// Config is the configuration run, its defaults filled in.
	Config Config
	// Ops counts the operations (queries; dial, query and close with
	// Config.Connect) that succeeded; Errors those that failed.
	Ops, Errors int64
	// FirstError is the earliest error of the run, nil when there was
	// none.
	FirstError error
	// Elapsed is the time measured: from the end of the warmup until the
	// last worker stopped.
	Elapsed time.Duration
	// Interrupted says the run's context ended before Duration did.
	Interrupted bool
	// Latency holds the duration of every successful operation.
	Latency *Histogram
}

// Throughput is the number of successful operations per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Run measures the latency and throughput of the operations of dial's
// connections with cfg.Concurrency workers for cfg.Duration, after
// cfg.Warmup.
//
// Each worker keeps its own connection (or, with cfg.Connect, opens one
// per operation) and its own histogram, merged when all have stopped, so
// that workers share nothing while they measure. A failed operation is
// counted in Errors; the worker then closes its connection and dials a
// new one, as the failure may have broken it. Until some operation has
// succeeded, the first failure (of a dial, say, or of a query with a typo)
// ends the run at once.
//
// Ending ctx stops the run: queries under way are cancelled (not counted)
// and the Result holds what was measured until then, with Interrupted set.
//
// Run always returns a Result. The error is non-nil when there is nothing
// to report: no operation succeeded (then it is, or wraps, the first
// failure or ctx's error) or cfg is invalid.
func Run(ctx context.Context, cfg Config, dial Dialer) (*Result, error) {
	cfg, err := cfg.withDefaults()
	res := &Result{Config: cfg, Latency: NewHistogram()}
	if err != nil {
		return res, err
	}
	if dial == nil {
		return res, errors.New("bench: Run needs a Dialer")
	}
	runCtx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	s := &runState{
		cfg:   cfg,
		dial:  dial,
		ctx:   runCtx,
		abort: abort,
	}
	start := time.Now()
	s.from = start.Add(cfg.Warmup)
	s.until = s.from.Add(cfg.Duration)
	workers := make([]worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { workers[i].run(s) })
	}
	wg.Wait()

	var stopped time.Time
	var firstAt time.Time
	for i := range workers {
		w := &workers[i]
		res.Ops += w.ops
		res.Errors += w.errors
		res.Latency.Merge(&w.latency)
		if w.firstErr != nil && (res.FirstError == nil || w.firstErrAt.Before(firstAt)) {
			res.FirstError, firstAt = w.firstErr, w.firstErrAt
		}
		if w.stopped.After(stopped) {
			stopped = w.stopped
		}
	}
	if stopped.After(s.from) {
		res.Elapsed = stopped.Sub(s.from)
	}
	res.Interrupted = ctx.Err() != nil && stopped.Before(s.until)
	if res.Ops > 0 {
		return res, nil
	}
	switch {
	case ctx.Err() == nil && runCtx.Err() != nil:
		return res, context.Cause(runCtx) // the failure that aborted the run
	case res.FirstError != nil:
		return res, res.FirstError
	case ctx.Err() != nil:
		return res, fmt.Errorf("bench: interrupted before any operation completed: %w", context.Cause(ctx))
	}
	return res, errors.New("bench: no operation completed in the time given; give it a longer Duration")
}

// runState is what the workers of one run share; they only read it,
// except for succeeded.
type runState struct {
	cfg         Config
	dial        Dialer
	ctx         context.Context
	abort       context.CancelCauseFunc
	from, until time.Time
	// succeeded is set by the first operation that succeeds; until then a
	// failure aborts the run.
	succeeded atomic.Bool
}

// worker runs operations one at a time and counts them.
type worker struct {
	latency    Histogram
	ops        int64
	errors     int64
	firstErr   error
	firstErrAt time.Time
	stopped    time.Time // when it left its loop
}

// redialPause is how long a worker waits after a failed dial before it
// dials again, so that a database that went away is not hammered.
const redialPause = 20 * time.Millisecond

func (w *worker) run(s *runState) {
	var conn Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	done := s.ctx.Done()
	for {
		began := time.Now()
		// Past the end, a worker still makes the run's first operation
		// if none has succeeded yet (it may have started late, on a busy
		// machine, after a short Duration had passed).
		if isDone(done) || !began.Before(s.until) && s.succeeded.Load() {
			break
		}
		if !s.cfg.Connect && conn == nil {
			c, err := s.dial(s.ctx)
			if err != nil {
				if !w.failed(s, began, err) {
					break
				}
				pause(s.ctx, redialPause)
				continue
			}
			conn = c
			began = time.Now()
		}
		var err error
		if s.cfg.Connect {
			err = connectOnce(s.ctx, s.dial)
		} else {
			err = conn.Do(s.ctx)
		}
		took := time.Since(began)
		if err != nil {
			if conn != nil {
				conn.Close()
				conn = nil
			}
			if !w.failed(s, began, err) {
				break
			}
			continue
		}
		if !s.succeeded.Load() { // a read only: no cache line bouncing between workers
			s.succeeded.Store(true)
		}
		if !began.Before(s.from) {
			w.ops++
			w.latency.Record(took)
		}
	}
	w.stopped = time.Now()
}

// failed handles the failure of an operation begun at began and reports
// whether the worker should go on.
func (w *worker) failed(s *runState, began time.Time, err error) bool {
	if s.ctx.Err() != nil {
		// Interrupted (or aborted by another worker): not the
		// operation's fault.
		return false
	}
	if !began.Before(s.from) {
		w.errors++
		if w.firstErr == nil {
			w.firstErr, w.firstErrAt = err, began
		}
	}
	if !s.succeeded.Load() {
		s.abort(err)
		return false
	}
	return true
}

// connectOnce is one operation of a Connect run: dial, query, close.
func connectOnce(ctx context.Context, dial Dialer) error {
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	err = c.Do(ctx)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// isDone reports whether done is closed, without a lock (unlike
// ctx.Err).
func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// pause waits for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
