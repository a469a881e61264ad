package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine describes where a report was measured.
type Machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	Kernel      string `json:"kernel,omitempty"`
	GoVersion   string `json:"go_version"`
	PostgreSQL  string `json:"postgresql,omitempty"`
	MariaDB     string `json:"mariadb,omitempty"`
	Pgbench     string `json:"pgbench,omitempty"`
	Commit      string `json:"commit,omitempty"`
}

// ParseCPUModel is the first "model name" of /proc/cpuinfo (or, on
// machines that have none, "Hardware" or "cpu model").
func ParseCPUModel(cpuinfo []byte) string {
	var fallback string
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "model name":
			return val
		case "Hardware", "cpu model":
			if fallback == "" {
				fallback = val
			}
		}
	}
	return fallback
}

// LocalMachine describes this machine: CPU, cores, memory, kernel, Go, and
// the commit of the module in moduleDir ("" to skip; "-dirty" is appended
// when the work tree has changes).
func LocalMachine(ctx context.Context, moduleDir string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = ParseCPUModel(data)
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryBytes, _ = ParseStatusKB(data, "MemTotal")
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(data))
	}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		// The toolchain that built the daemons, which go run also used.
		if v := strings.TrimSpace(string(out)); v != "" {
			m.GoVersion = v
		}
	}
	if moduleDir != "" {
		m.Commit = gitCommit(ctx, moduleDir)
	}
	return m
}

func gitCommit(ctx context.Context, dir string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	rev, err := git("rev-parse", "--short=12", "HEAD")
	if err != nil {
		return ""
	}
	if st, err := git("status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
		rev += "-dirty"
	}
	return rev
}

// FormatBytes is a size in the largest binary unit that keeps it >= 1.
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
