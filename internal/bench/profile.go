package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
)

// profiler takes CPU profiles of the daemons through their diagnostics
// endpoints (diag_addr) while a workload runs through Portcullis, and
// writes them under dir as <workload>.<daemon>.pprof for go tool pprof.
type profiler struct {
	dir     string
	daemons []*daemon
	client  *http.Client
}

// profileName makes a file name of a workload's name: "pgbench -S, c=8"
// becomes "pgbench-S-c8".
func profileName(workload string) string {
	var b strings.Builder
	dash := false
	for _, r := range workload {
		switch {
		case r == '=':
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	return b.String()
}

// start profiles every daemon for d (rounded up to whole seconds, as
// pprof takes it) and returns a function that waits for the profiles and
// reports the first failure. A profile that fails does not fail the
// workload: the caller logs the error.
func (p *profiler) start(ctx context.Context, workload string, d time.Duration) (wait func() error) {
	secs := max(1, int(math.Ceil(d.Seconds())))
	name := profileName(workload)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, dm := range p.daemons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(p.dir, name+"."+dm.name+".pprof")
			if err := p.fetch(ctx, dm, fmt.Sprintf("profile?seconds=%d", secs), path); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	return func() error {
		wg.Wait()
		return first
	}
}

// heap writes heap profiles of daemons as <workload>.<daemon>.heap.pprof,
// after a garbage collection (so they show what is live), and the same in
// text as .heap.txt, which ends with the runtime's memory statistics
// (heap in use, stacks, what was returned to the OS) that explain RSS.
func (p *profiler) heap(ctx context.Context, workload string, daemons ...*daemon) error {
	for _, d := range daemons {
		base := filepath.Join(p.dir, profileName(workload)+"."+d.name+".heap")
		if err := p.fetch(ctx, d, "heap?gc=1", base+".pprof"); err != nil {
			return err
		}
		if err := p.fetch(ctx, d, "heap?debug=1", base+".txt"); err != nil {
			return err
		}
	}
	return nil
}

// fetch writes what the daemon's /debug/pprof/<query> answers to path.
func (p *profiler) fetch(ctx context.Context, d *daemon, query, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/%s", d.diagAddr, query)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("bench: profiling the %s: %w", d.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("bench: profiling the %s: %s: %s", d.name, resp.Status, strings.TrimSpace(string(msg)))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("bench: profiling the %s: %w", d.name, err)
	}
	return f.Close()
}
