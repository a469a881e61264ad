package bench

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SmokeEnv is the environment variable that enables TestSuiteSmoke, which
// runs the whole suite in miniature (about a minute and a half).
const SmokeEnv = "PORTCULLIS_BENCH_SMOKE"

func TestMain(m *testing.M) {
	// The smoke test re-executes this binary as the agents process.
	if len(os.Args) > 1 && os.Args[1] == "agents" {
		os.Exit(AgentsMain(context.Background(), os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestSuiteSmoke(t *testing.T) {
	if os.Getenv(SmokeEnv) != "1" || testing.Short() {
		t.Skipf("the whole suite in miniature; set %s=1 to run it", SmokeEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root, err := ModuleRoot(ctx, ".")
	if err != nil {
		t.Fatal(err)
	}
	profDir := t.TempDir()
	rep, err := Run(ctx, Config{
		ProfileDir:    profDir,
		ModuleDir:     root,
		Quick:         true,
		Rounds:        1,
		Duration:      time.Second,
		CopyBytes:     2 << 20,
		Sessions:      []SessionCount{{"postgres", 20}, {"mysql", 20}},
		Agents:        5,
		AgentsCommand: []string{os.Args[0], "agents"},
		Command:       "TestSuiteSmoke",
		Log:           slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Workloads) != 15 {
		t.Errorf("%d workloads, want 15", len(rep.Workloads))
	}
	for _, w := range rep.Workloads {
		if w.Error != "" || w.Portcullis == nil {
			t.Errorf("%s: no figure: %s", w.Name, w.Error)
		}
		// Every throughput figure says what the proxy and the agent spent
		// on it; the Auth service's share may round to nothing.
		if _, ok := cpuUnits[w.Unit]; ok && (w.CPU == nil || w.CPU.Proxy <= 0 || w.CPU.Agent <= 0 || w.CPU.Auth < 0) {
			t.Errorf("%s: CPU cost %+v", w.Name, w.CPU)
		}
	}
	// Every daemon was profiled in each of the 9 interleaved workloads
	// (the latency one gives 3 figures), and the proxy's and agent's heaps
	// with the sessions held.
	for _, pattern := range []string{"*.auth.pprof", "*.proxy.pprof", "*.agent.pprof", "idle-sessions-*.proxy.heap.pprof", "idle-sessions-*.agent.heap.pprof"} {
		files, _ := filepath.Glob(filepath.Join(profDir, pattern))
		want := 9
		if strings.HasPrefix(pattern, "idle") {
			want = 2
		}
		if len(files) != want {
			t.Errorf("%d profiles %s, want %d: %v", len(files), pattern, want, files)
		}
		for _, f := range files {
			if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
				t.Errorf("profile %s: empty or missing (%v)", f, err)
			}
		}
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
}
