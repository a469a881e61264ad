package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ParseStatusKB returns a "Name:   N kB" field of /proc/PID/status (or
// /proc/meminfo) in bytes.
func ParseStatusKB(status []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: %s: %w", field, err)
		}
		unit := int64(1)
		if len(f) > 1 {
			switch strings.ToLower(f[1]) {
			case "kb":
				unit = 1 << 10
			case "mb":
				unit = 1 << 20
			case "gb":
				unit = 1 << 30
			default:
				return 0, fmt.Errorf("bench: %s: unknown unit %q", field, f[1])
			}
		}
		return n * unit, nil
	}
	return 0, fmt.Errorf("bench: no %s field", field)
}

// RSS is the resident set size of process pid (VmRSS), in bytes.
func RSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: RSS of process %d: %w", pid, err)
	}
	return ParseStatusKB(data, "VmRSS")
}

// RaiseFileLimit raises this process's soft RLIMIT_NOFILE to its hard
// limit (children inherit it) and returns the new soft limit.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("bench: getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("bench: raise the open file limit to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// CPUTime is the CPU time that process pid's threads have used: the sum of
// the first field of /proc/PID/task/*/schedstat, in nanoseconds (finer
// than the clock ticks of /proc/PID/stat). Threads that have exited are
// not counted; Go keeps its threads.
func CPUTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("bench: CPU time of process %d: no threads in /proc", pid)
	}
	var total time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited meanwhile
		}
		ns, err := parseSchedstat(data)
		if err != nil {
			return 0, fmt.Errorf("bench: %s: %w", t, err)
		}
		total += ns
	}
	return total, nil
}

// parseSchedstat reads the time on CPU, the first of schedstat's fields.
func parseSchedstat(data []byte) (time.Duration, error) {
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, fmt.Errorf("empty schedstat")
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(ns), nil
}
