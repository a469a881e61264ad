package bench

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDB hands out connections whose queries take delay; it counts what
// is done to them.
type fakeDB struct {
	delay   time.Duration
	dialErr func(n int64) error // fails the n-th dial (from 1) when non-nil
	doErr   func(n int64) error // fails the n-th query (from 1) when non-nil
	// block makes queries wait for their context instead of delay.
	block bool

	dials, closes, queries atomic.Int64
	mu                     sync.Mutex
	open                   map[*fakeConn]bool
}

type fakeConn struct {
	db     *fakeDB
	closed bool
}

func (db *fakeDB) dial(ctx context.Context) (Conn, error) {
	n := db.dials.Add(1)
	if db.dialErr != nil {
		if err := db.dialErr(n); err != nil {
			return nil, err
		}
	}
	c := &fakeConn{db: db}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.open == nil {
		db.open = make(map[*fakeConn]bool)
	}
	db.open[c] = true
	return c, nil
}

func (c *fakeConn) Do(ctx context.Context) error {
	n := c.db.queries.Add(1)
	if c.db.block {
		<-ctx.Done()
		return ctx.Err()
	}
	if c.db.delay > 0 {
		t := time.NewTimer(c.db.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.db.doErr != nil {
		return c.db.doErr(n)
	}
	return nil
}

func (c *fakeConn) Close() error {
	c.db.mu.Lock()
	defer c.db.mu.Unlock()
	if c.closed {
		panic("closed twice")
	}
	c.closed = true
	delete(c.db.open, c)
	c.db.closes.Add(1)
	return nil
}

func (db *fakeDB) openConns() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return len(db.open)
}

func TestRunKeepsAConnectionPerWorker(t *testing.T) {
	db := &fakeDB{delay: time.Millisecond}
	res, err := Run(context.Background(), Config{Concurrency: 4, Duration: 150 * time.Millisecond}, db.dial)
	if err != nil {
		t.Fatal(err)
	}
	if got := db.dials.Load(); got != 4 {
		t.Errorf("%d dials, want one per worker", got)
	}
	if db.openConns() != 0 || db.closes.Load() != 4 {
		t.Errorf("%d connections left open, %d closed", db.openConns(), db.closes.Load())
	}
	if res.Ops != db.queries.Load() || res.Ops < 40 || res.Errors != 0 || res.FirstError != nil {
		t.Errorf("ops %d errors %d (%v), queries %d", res.Ops, res.Errors, res.FirstError, db.queries.Load())
	}
	if res.Latency.Count() != res.Ops || res.Latency.Min() < time.Millisecond {
		t.Errorf("latency count %d min %v; want %d at least 1ms", res.Latency.Count(), res.Latency.Min(), res.Ops)
	}
	if res.Elapsed < 150*time.Millisecond || res.Elapsed > time.Second || res.Interrupted {
		t.Errorf("elapsed %v interrupted %v", res.Elapsed, res.Interrupted)
	}
	if tp := res.Throughput(); tp != float64(res.Ops)/res.Elapsed.Seconds() {
		t.Errorf("throughput %v", tp)
	}
	if res.Config != (Config{Concurrency: 4, Duration: 150 * time.Millisecond}) {
		t.Errorf("config %+v", res.Config)
	}
}

func TestRunConnectDialsPerOperation(t *testing.T) {
	db := &fakeDB{delay: 500 * time.Microsecond}
	res, err := Run(context.Background(), Config{Concurrency: 2, Duration: 100 * time.Millisecond, Connect: true}, db.dial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || db.dials.Load() != res.Ops || db.queries.Load() != res.Ops || db.closes.Load() != res.Ops || db.openConns() != 0 {
		t.Errorf("ops %d: %d dials, %d queries, %d closes, %d open; want one each per operation",
			res.Ops, db.dials.Load(), db.queries.Load(), db.closes.Load(), db.openConns())
	}
}

func TestRunDefaults(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil || cfg != (Config{Concurrency: 1, Duration: 10 * time.Second}) {
		t.Errorf("defaults %+v, %v", cfg, err)
	}
	for _, bad := range []Config{{Concurrency: -1}, {Duration: -time.Second}, {Warmup: -time.Second}} {
		if res, err := Run(context.Background(), bad, (&fakeDB{}).dial); err == nil || res == nil || !strings.HasPrefix(err.Error(), "bench: Config.") {
			t.Errorf("Run(%+v): %v", bad, err)
		}
	}
	if _, err := Run(context.Background(), Config{}, nil); err == nil {
		t.Error("Run without a Dialer did not fail")
	}
}

func TestRunCancelKeepsWhatWasMeasured(t *testing.T) {
	db := &fakeDB{delay: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	started := time.Now()
	res, err := Run(ctx, Config{Concurrency: 2, Duration: time.Hour}, db.dial)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(started); took > 10*time.Second {
		t.Errorf("Run took %v after its context was cancelled", took)
	}
	if !res.Interrupted || res.Ops == 0 || res.Errors != 0 || res.Elapsed < 50*time.Millisecond || res.Elapsed > 10*time.Second {
		t.Errorf("interrupted %v ops %d errors %d (%v) elapsed %v", res.Interrupted, res.Ops, res.Errors, res.FirstError, res.Elapsed)
	}
	if db.openConns() != 0 {
		t.Errorf("%d connections left open", db.openConns())
	}
}

func TestRunCancelBeforeAnyResult(t *testing.T) {
	db := &fakeDB{block: true}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	res, err := Run(ctx, Config{Duration: time.Hour}, db.dial)
	if !errors.Is(err, context.Canceled) || res == nil || res.Ops != 0 || res.Errors != 0 || !res.Interrupted {
		t.Errorf("err %v, result %+v", err, res)
	}
}

func TestRunDialFailureFailsFast(t *testing.T) {
	refused := errors.New("connection refused")
	db := &fakeDB{dialErr: func(int64) error { return refused }}
	started := time.Now()
	res, err := Run(context.Background(), Config{Concurrency: 3, Duration: time.Hour}, db.dial)
	if !errors.Is(err, refused) {
		t.Fatalf("err %v, want the dial's", err)
	}
	if time.Since(started) > 10*time.Second || res.Ops != 0 || res.Errors == 0 || !errors.Is(res.FirstError, refused) {
		t.Errorf("took %v, ops %d, errors %d, first %v", time.Since(started), res.Ops, res.Errors, res.FirstError)
	}

	// In Connect mode too.
	db = &fakeDB{dialErr: func(int64) error { return refused }}
	if _, err := Run(context.Background(), Config{Duration: time.Hour, Connect: true}, db.dial); !errors.Is(err, refused) {
		t.Errorf("connect mode: err %v", err)
	}

	// A failing query, as a typo makes.
	typo := errors.New(`syntax error at or near "SELEC"`)
	db = &fakeDB{doErr: func(int64) error { return typo }}
	if _, err := Run(context.Background(), Config{Duration: time.Hour}, db.dial); !errors.Is(err, typo) {
		t.Errorf("failing query: err %v", err)
	}
	if db.openConns() != 0 {
		t.Errorf("%d connections left open", db.openConns())
	}
}

func TestRunCountsErrorsAfterSuccess(t *testing.T) {
	broken := errors.New("connection reset")
	// Every third query fails; after it the worker redials.
	db := &fakeDB{delay: 200 * time.Microsecond, doErr: func(n int64) error {
		if n%3 == 0 {
			return broken
		}
		return nil
	}}
	res, err := Run(context.Background(), Config{Duration: 100 * time.Millisecond}, db.dial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || !errors.Is(res.FirstError, broken) || res.Ops+res.Errors != db.queries.Load() {
		t.Errorf("ops %d errors %d first %v, queries %d", res.Ops, res.Errors, res.FirstError, db.queries.Load())
	}
	// The last failure may end the run before its redial.
	if d := db.dials.Load(); d != res.Errors+1 && d != res.Errors || db.openConns() != 0 {
		t.Errorf("%d dials for %d errors (want a redial after each), %d open", db.dials.Load(), res.Errors, db.openConns())
	}
	if res.Latency.Count() != res.Ops {
		t.Errorf("latency counts %d, ops %d: failed queries must not be timed", res.Latency.Count(), res.Ops)
	}

	// A dial that fails after the run got going is counted and retried.
	db = &fakeDB{delay: 200 * time.Microsecond,
		doErr:   failOn(5, broken),
		dialErr: failOn(2, broken),
	}
	res, err = Run(context.Background(), Config{Duration: 100 * time.Millisecond}, db.dial)
	if err != nil || res.Errors != 2 || db.dials.Load() != 3 {
		t.Errorf("err %v, errors %d, dials %d; want 2 errors and 3 dials", err, res.Errors, db.dials.Load())
	}
}

// failOn fails the k-th call with err.
func failOn(k int64, err error) func(n int64) error {
	return func(n int64) error {
		if n == k {
			return err
		}
		return nil
	}
}

func TestRunWarmupIsNotCounted(t *testing.T) {
	db := &fakeDB{delay: 2 * time.Millisecond}
	res, err := Run(context.Background(), Config{Warmup: 100 * time.Millisecond, Duration: 100 * time.Millisecond}, db.dial)
	if err != nil {
		t.Fatal(err)
	}
	if q := db.queries.Load(); res.Ops == 0 || res.Ops >= q-10 {
		t.Errorf("%d queries ran, %d counted; the warmup's should not be", q, res.Ops)
	}
	if res.Elapsed < 100*time.Millisecond || res.Elapsed > 150*time.Millisecond+time.Second {
		t.Errorf("elapsed %v; want the measured 100ms, not the warmup", res.Elapsed)
	}
}

func TestRunTooShort(t *testing.T) {
	// Queries longer than the run: the one under way is waited for and
	// counted.
	db := &fakeDB{delay: 60 * time.Millisecond}
	res, err := Run(context.Background(), Config{Duration: time.Millisecond}, db.dial)
	if err != nil || res.Ops != 1 || res.Elapsed < 60*time.Millisecond {
		t.Errorf("err %v, ops %d, elapsed %v", err, res.Ops, res.Elapsed)
	}
}
