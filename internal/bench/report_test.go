package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestNewResult(t *testing.T) {
	r := NewResult("x", "pgbench", "TPS", 1000, 800, Aim{MinRatio: 0.77}, false, false)
	if *r.Ratio != 0.8 || r.Added != nil || !*r.MeetsAim || r.Aim != "≥ 0.77×" {
		t.Errorf("throughput: %+v", r)
	}
	r = NewResult("x", "latency", "µs", 70, 130, Aim{MaxAdded: 50}, true, true)
	if math.Abs(*r.Ratio-130.0/70) > 1e-9 || *r.Added != 60 || *r.MeetsAim || r.Aim != "≤ +50 µs" {
		t.Errorf("latency: %+v", r)
	}
	r = NewResult("x", "memory", "KiB/session", math.NaN(), 30, Aim{MaxValue: 64}, true, false)
	if r.Direct != nil || r.Ratio != nil || !*r.MeetsAim || r.Aim != "≤ 64 KiB/session" {
		t.Errorf("memory: %+v", r)
	}
	r = NewResult("x", "mysql", "queries/s", 10, 5, Aim{}, false, false)
	if r.MeetsAim != nil || r.Aim != "" {
		t.Errorf("no aim: %+v", r)
	}
}

// sampleReport has one result of each kind.
func sampleReport() *Report {
	lat := NewResult("select1_latency_p50", "SELECT 1 latency, c=1, p50", "µs", 71.9, 115.3, aimLatency, true, true)
	lat.DirectRounds, lat.PortcullisRounds = []float64{70.1, 71.9, 75}, []float64{110, 115.3, 120}
	mem := NewResult("idle_session_memory_mysql_1000", "idle session memory, MariaDB, 1,000 sessions", "KiB/session", math.NaN(), 42.5, aimIdleMemory, true, false)
	mem.Parts = map[string]float64{"proxy": 20.25, "agent": 22.25}
	mem.Note = "RSS proxy 20.1 MiB -> 40.0 MiB"
	return &Report{
		Command: "go run ./internal/bench/cmd/suite --quick",
		Date:    time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC),
		Quick:   true,
		Rounds:  3,
		Elapsed: 240,
		Machine: Machine{CPU: "Intel(R) Xeon(R) Processor @ 2.80GHz", Cores: 2, MemoryBytes: 24604572 << 10,
			Kernel: "Linux 6.1.0", GoVersion: "go1.26.8", PostgreSQL: "PostgreSQL 15.20", MariaDB: "10.11.19-MariaDB",
			Pgbench: "pgbench (PostgreSQL) 15.20", Commit: "e204e52a08fe"},
		Workloads: []Result{
			NewResult("pgbench_select_c1", "pgbench -S, c=1", "TPS", 6707, 5300, aimPgbenchC1, false, false),
			lat,
			NewResult("copy_out", "COPY 100 MiB out", "MiB/s", 244.3, 230.1, aimCopy, false, false),
			mem,
			Failed("agents_reconnect", "1,000 agents: all reconnected after a proxy restart", "s", Aim{}, errors.New("the proxy did not start\nlog follows")),
		},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to make it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", name, got)
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", b.Bytes())
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.md", b.Bytes())
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Machine   map[string]any   `json:"machine"`
		Command   string           `json:"command"`
		Workloads []map[string]any `json:"workloads"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cpu", "cores", "memory_bytes", "go_version", "postgresql", "mariadb", "commit"} {
		if _, ok := doc.Machine[k]; !ok {
			t.Errorf("machine has no %q", k)
		}
	}
	if !strings.Contains(doc.Command, "--quick") {
		t.Errorf("command %q", doc.Command)
	}
	// Every workload carries name, unit, direct, portcullis and ratio, null
	// where there is no figure.
	for _, w := range doc.Workloads {
		for _, k := range []string{"name", "unit", "direct", "portcullis", "ratio"} {
			if _, ok := w[k]; !ok {
				t.Errorf("workload %v has no %q", w["name"], k)
			}
		}
	}
	w := doc.Workloads[1]
	if w["direct"] != 71.9 || w["portcullis"] != 115.3 || math.Abs(w["added"].(float64)-43.4) > 1e-9 || w["aim"] != "≤ +50 µs" || w["meets_aim"] != true {
		t.Errorf("latency workload %v", w)
	}
	if w := doc.Workloads[3]; w["direct"] != nil || w["ratio"] != nil || w["parts"] == nil {
		t.Errorf("memory workload %v", w)
	}
	if w := doc.Workloads[4]; w["error"] == nil || w["portcullis"] != nil {
		t.Errorf("failed workload %v", w)
	}
}

func TestNewCPUCost(t *testing.T) {
	busy := map[string][]float64{"proxy": {0.5, 0.6, 0.4}, "agent": {0.8, 0.9, 1.0}, "auth": {0.1, 0.1, 0.1}}
	// 10,000 TPS with the proxy half a core busy: 50 µs per transaction.
	c := NewCPUCost("TPS", busy, []float64{10000, 12000, 8000})
	if c == nil || c.Unit != "µs per transaction" || math.Abs(c.Proxy-50) > 1e-9 || math.Abs(c.Agent-80) > 1e-9 || math.Abs(c.Auth-10) > 1e-9 {
		t.Errorf("TPS: %+v", c)
	}
	if c := NewCPUCost("MiB/s", map[string][]float64{"proxy": {0.5}, "agent": {1}, "auth": {0}}, []float64{100}); c == nil || c.Unit != "ms per MiB" || c.Proxy != 5 || c.Agent != 10 {
		t.Errorf("MiB/s: %+v", c)
	}
	if NewCPUCost("µs", busy, []float64{1, 2, 3}) != nil || NewCPUCost("TPS", nil, []float64{1}) != nil || NewCPUCost("TPS", busy, nil) != nil {
		t.Error("a CPU cost without a throughput figure or without CPU times")
	}
}
