package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

func TestAuditSearch(t *testing.T) {
	c := newTestCluster(t, authtest.WithAuditLog())
	agent, _, _ := c.Join(t, "db", ca.SystemRoleDatabase, "agent-1")
	now := time.Now().UTC()
	at := func(ago time.Duration) string { return now.Add(-ago).Format(time.RFC3339Nano) }
	var batch []json.RawMessage
	for _, e := range []map[string]any{
		{"event": "db.session.start", "uid": "u1", "time": at(3 * time.Hour), "sid": "s1", "user": "alice", "db_service": "pg1",
			"db_user": "alice", "db_name": "app", "client_addr": "203.0.113.7:5000", "success": true},
		{"event": "db.session.query", "uid": "u2", "time": at(2 * time.Hour), "sid": "s1", "user": "alice", "db_service": "pg1",
			"query": "select 42", "success": true},
		{"event": "db.session.query", "uid": "u3", "time": at(30 * time.Minute), "sid": "s2", "user": "bob", "db_service": "pg2",
			"query": "select\n\t1 \x1b[31m", "success": false, "error": "relation does not exist"},
		{"event": "db.session.end", "uid": "u4", "time": at(20 * time.Minute), "sid": "s1", "user": "alice", "db_service": "pg1",
			"duration": 1500000000, "bytes_in": 10, "bytes_out": 20},
	} {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, b)
	}
	if err := agent.EmitAuditEvents(context.Background(), batch); err != nil {
		t.Fatal(err)
	}

	out := c.mustPctl(t, "", "audit", "search", "--type", "db.session.query")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("audit search printed %q", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 6 || f[1] != "db.session.query" || f[2] != "alice" || f[3] != "pg1" ||
		f[4]+" "+f[5] != "select 42" || !strings.HasPrefix(f[0], now.Format("2006-01-02")[:4]) {
		t.Errorf("row %q", lines[1])
	}
	if !strings.Contains(lines[2], "select 1 ?[31m (failed: relation does not exist)") {
		t.Errorf("row %q: want whitespace folded, the escape defused and the failure shown", lines[2])
	}

	out = c.mustPctl(t, "", "audit", "search", "--user", "alice", "--db", "pg1", "--type", "db.session.*", "--since", "150m")
	if strings.Contains(out, "session started") || !strings.Contains(out, "select 42") ||
		!strings.Contains(out, "session ended after 1.5s, 10 bytes in, 20 bytes out") {
		t.Errorf("--user alice --db pg1 --since 150m printed %q", out)
	}
	out = c.mustPctl(t, "", "audit", "search", "--db", "pg1", "--type", "db.session.start,db.session.end", "--limit", "1")
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, "session ended") {
		t.Errorf("--limit 1 printed %q", out)
	}
	out = c.mustPctl(t, "", "audit", "search", "--type", "db.session.start", "--from", at(4*time.Hour), "--to", at(150*time.Minute))
	if !strings.Contains(out, "session started as alice@app from 203.0.113.7:5000") {
		t.Errorf("--from/--to printed %q", out)
	}
	if out := c.mustPctl(t, "", "audit", "search", "--user", "nobody"); out != "No audit events match.\n" {
		t.Errorf("no match printed %q", out)
	}
	// The Auth service's own events are there too.
	if out := c.mustPctl(t, "", "audit", "search", "--type", audit.TypeCertCreate); !strings.Contains(out, "host certificate for agent-1") {
		t.Errorf("cert.create events: %q", out)
	}

	var events []map[string]any
	if err := json.Unmarshal([]byte(c.mustPctl(t, "", "audit", "search", "--user", "bob", "--format", "json")), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0]["uid"] != "u3" || events[0]["forwarded_by"] != "agent-1" || events[0]["cluster_name"] != "test" {
		t.Errorf("--format json = %v", events)
	}
	if out := c.mustPctl(t, "", "audit", "search", "--user", "nobody", "--format", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("--format json without matches printed %q", out)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "yesterday"}, "is not a duration"},
		{[]string{"--since", "1h", "--from", "2026-11-23"}, "use one"},
		{[]string{"--from", "noon"}, "is not a time"},
		{[]string{"--from", "2026-11-24", "--to", "2026-11-23"}, "is not after"},
		{[]string{"--limit", "0"}, "--limit 0"},
		{[]string{"--format", "yaml"}, "--format"},
		{[]string{"extra"}, "takes 0 argument"},
	} {
		_, errOut, code := c.pctl(t, "", append([]string{"audit", "search"}, tt.args...)...)
		if code != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("audit search %v: exit %d, %q; want %q", tt.args, code, errOut, tt.want)
		}
	}
}

func TestAuditSearchWithoutAuditLog(t *testing.T) {
	c := newTestCluster(t)
	_, errOut, code := c.pctl(t, "", "audit", "search")
	if code != 1 || !strings.Contains(errOut, "no searchable audit log") {
		t.Errorf("exit %d, %q", code, errOut)
	}
}

func TestParseSince(t *testing.T) {
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := parseSince(in); err != nil || got != want {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1h", "d", "1.5d", "-2d", "99999999d"} {
		if _, err := parseSince(in); err == nil {
			t.Errorf("parseSince(%q) succeeded", in)
		}
	}
}
