package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\tportcullis\nVmPeak:\t  812345 kB\nVmRSS:\t   20532 kB\nThreads:\t12\n")
	if got, err := ParseStatusKB(status, "VmRSS"); err != nil || got != 20532*1024 {
		t.Errorf("VmRSS = %d, %v", got, err)
	}
	if got, err := ParseStatusKB([]byte("MemTotal:       24604572 kB\n"), "MemTotal"); err != nil || got != 24604572*1024 {
		t.Errorf("MemTotal = %d, %v", got, err)
	}
	if got, err := ParseStatusKB(status, "Threads"); err != nil || got != 12 {
		t.Errorf("Threads = %d, %v", got, err)
	}
	for _, bad := range []string{"", "VmRSS:\n", "VmRSS:\tlots kB\n", "VmRSS:\t12 pages\n", "VmRSSx:\t1 kB\n"} {
		if _, err := ParseStatusKB([]byte(bad), "VmRSS"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestRSSOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	if n, err := RSS(os.Getpid()); err != nil || n < 1<<20 {
		t.Errorf("RSS = %d, %v", n, err)
	}
}

func TestPerSession(t *testing.T) {
	if got := PerSession(10<<20, 10<<20+64<<10*1000, 1000); got != 64 {
		t.Errorf("PerSession = %v, want 64", got)
	}
	if got := PerSession(1, 2, 0); got != 0 {
		t.Errorf("PerSession(n=0) = %v", got)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCPUTime(t *testing.T) {
	if d, err := parseSchedstat([]byte("123456789 42 7\n")); err != nil || d != 123456789 {
		t.Errorf("parseSchedstat: %v, %v", d, err)
	}
	if _, err := parseSchedstat([]byte("")); err == nil {
		t.Error("parseSchedstat accepted an empty file")
	}
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn some CPU: the counter must move by about that much.
	start := time.Now()
	x := 0
	for time.Since(start) < 50*time.Millisecond {
		x++
	}
	after, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 10*time.Millisecond {
		t.Errorf("CPU time moved %v over a 50ms busy loop (%d turns)", after-before, x)
	}
	if _, err := CPUTime(1 << 30); err == nil {
		t.Error("CPUTime of a process that does not exist")
	}
}
