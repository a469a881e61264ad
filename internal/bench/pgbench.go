package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// PgbenchResult is what a pgbench run printed.
type PgbenchResult struct {
	TPS          float64 // transactions per second, as pgbench reports it
	LatencyMs    float64 // "latency average", 0 if absent
	Transactions int64   // "number of transactions actually processed"
	Failed       int64   // "number of failed transactions", 0 if absent
}

// ParsePgbench reads pgbench's summary. pgbench 14 and later print one
// "tps = N (without initial connection time)" line, or "(including
// reconnection times)" with -C; older versions print an "including
// connections establishing" line and an "excluding" one, of which the
// first is taken (it is what -C measures).
func ParsePgbench(out []byte) (*PgbenchResult, error) {
	var r PgbenchResult
	seenTPS := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			key, val, ok = strings.Cut(line, ":")
		}
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		num := val
		if i := strings.IndexAny(num, " /("); i >= 0 {
			num = num[:i]
		}
		var err error
		switch {
		case key == "tps":
			if seenTPS {
				continue
			}
			r.TPS, err = strconv.ParseFloat(num, 64)
			seenTPS = err == nil
		case key == "latency average":
			r.LatencyMs, err = strconv.ParseFloat(num, 64)
		case key == "number of transactions actually processed":
			r.Transactions, err = strconv.ParseInt(num, 10, 64)
		case key == "number of failed transactions":
			r.Failed, err = strconv.ParseInt(num, 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("bench: pgbench printed %q: %w", line, err)
		}
	}
	if !seenTPS {
		return nil, errors.New("bench: pgbench printed no tps line")
	}
	return &r, nil
}

// PgbenchRun is one pgbench -S run.
type PgbenchRun struct {
	Clients  int
	Threads  int           // -j; 0 means [PgbenchThreads](Clients)
	Duration time.Duration // -T, rounded up to whole seconds (at least 1)
	Connect  bool          // -C: a new connection for every transaction
}

// PgbenchThreads is the -j the suite uses for c clients: min(c, 4).
func PgbenchThreads(clients int) int { return max(1, min(clients, 4)) }

// Args are pgbench's arguments: select-only, no vacuum first.
func (r PgbenchRun) Args() []string {
	threads := r.Threads
	if threads <= 0 {
		threads = PgbenchThreads(r.Clients)
	}
	secs := int((r.Duration + time.Second - 1) / time.Second)
	args := []string{"-n", "-S", "-c", strconv.Itoa(r.Clients), "-j", strconv.Itoa(threads), "-T", strconv.Itoa(max(1, secs))}
	if r.Connect {
		args = append(args, "-C")
	}
	return args
}

// Pgbench runs pgbench with env (PG* variables that say where to connect)
// and returns its summary. A run with failed transactions is an error.
func Pgbench(ctx context.Context, pgbench string, env []string, r PgbenchRun) (*PgbenchResult, error) {
	out, err := runTool(ctx, pgbench, env, r.Args()...)
	if err != nil {
		return nil, err
	}
	res, err := ParsePgbench(out)
	if err != nil {
		return nil, fmt.Errorf("%w; output:\n%s", err, out)
	}
	if res.Failed > 0 {
		return nil, fmt.Errorf("bench: pgbench: %d failed transactions; output:\n%s", res.Failed, out)
	}
	return res, nil
}

// runTool runs a client program with exactly env (plus PATH and HOME from
// this process) and returns its combined output.
func runTool(ctx context.Context, path string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LC_ALL=C"}, env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("bench: %s %s: %v\n%s", path, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}
