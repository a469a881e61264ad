package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
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
