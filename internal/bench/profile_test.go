package bench

import "testing"

func TestProfileName(t *testing.T) {
	for in, want := range map[string]string{
		"pgbench -S, c=8":                  "pgbench-S-c8",
		"pgbench -S -C (connections), c=8": "pgbench-S-C-connections-c8",
		"COPY 100 MiB out":                 "COPY-100-MiB-out",
		"idle sessions mysql 10000":        "idle-sessions-mysql-10000",
		"SELECT 1 latency, c=1":            "SELECT-1-latency-c1",
		"é/../x":                           "x",
	} {
		if got := profileName(in); got != want {
			t.Errorf("profileName(%q) = %q, want %q", in, got, want)
		}
	}
}
