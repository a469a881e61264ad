package bench

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParsePgbench(t *testing.T) {
	for _, tt := range []struct {
		file string
		want PgbenchResult
	}{
		{"pgbench15.txt", PgbenchResult{TPS: 10767.185924, LatencyMs: 0.743, Transactions: 32270}},
		{"pgbench15-connect.txt", PgbenchResult{TPS: 103.828181, LatencyMs: 77.051, Transactions: 312}},
		// Before PostgreSQL 14: the first tps line includes connecting.
		{"pgbench13.txt", PgbenchResult{TPS: 6650.123456, LatencyMs: 0.15, Transactions: 20000}},
	} {
		out, err := os.ReadFile(filepath.Join("testdata", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParsePgbench(out)
		if err != nil {
			t.Errorf("%s: %v", tt.file, err)
			continue
		}
		if *got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.file, *got, tt.want)
		}
	}
}

func TestParsePgbenchFailures(t *testing.T) {
	got, err := ParsePgbench([]byte("number of failed transactions: 7 (0.100%)\ntps = 5.0 (without initial connection time)\n"))
	if err != nil || got.Failed != 7 || got.TPS != 5 {
		t.Errorf("got %+v, %v", got, err)
	}
	for _, bad := range []string{
		"",
		"pgbench: error: connection to server failed\n",
		"tps = fast (without initial connection time)\n",
	} {
		if _, err := ParsePgbench([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestPgbenchArgs(t *testing.T) {
	for _, tt := range []struct {
		run  PgbenchRun
		want []string
	}{
		{PgbenchRun{Clients: 1, Duration: 15 * time.Second}, []string{"-n", "-S", "-c", "1", "-j", "1", "-T", "15"}},
		{PgbenchRun{Clients: 64, Duration: 2500 * time.Millisecond}, []string{"-n", "-S", "-c", "64", "-j", "4", "-T", "3"}},
		{PgbenchRun{Clients: 8, Threads: 2, Duration: time.Millisecond, Connect: true}, []string{"-n", "-S", "-c", "8", "-j", "2", "-T", "1", "-C"}},
	} {
		if got := tt.run.Args(); !slices.Equal(got, tt.want) {
			t.Errorf("%+v: %q, want %q", tt.run, got, tt.want)
		}
	}
}
