package mysql

import (
	"context"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// hangGuard bounds each integration test so that a broken relay fails
// instead of hanging; no assertion depends on it.
const hangGuard = 2 * time.Minute

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// checkTranscript compares the recorded events with want, line by line.
func checkTranscript(t *testing.T, rec *recorder, want []string) {
	t.Helper()
	got := transcript(rec.all())
	if !slices.Equal(got, want) {
		t.Errorf("audit events:\n got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// checkCommonFields checks that every event carries the session's fields.
func checkCommonFields(t *testing.T, events []audit.Event) {
	t.Helper()
	for _, e := range events {
		md := e.GetMetadata()
		if md.Time.IsZero() || md.ClusterName != "test" {
			t.Errorf("%s: time %v cluster %q", md.Type, md.Time, md.ClusterName)
		}
		f, err := audit.ToFields(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"sid", "user", "db_service", "db_protocol", "db_user", "db_name"} {
			if f.GetString(k) == "" {
				t.Errorf("%s: %q is empty", md.Type, k)
			}
		}
	}
}

func TestDriverTextQueries(t *testing.T) {
	a, _ := newTestAgent(t)
	ctx := testContext(t)
	db := a.open(t, a.driverConfig(t, "alice", "app"))
	var n int
	if err := db.QueryRowContext(ctx, "select 42").Scan(&n); err != nil || n != 42 {
		t.Fatalf("select 42: %d, %v", n, err)
	}
	checkTranscript(t, a.rec, []string{"query select 42"})
	checkCommonFields(t, a.rec.all())
}

// cliArgs are the arguments that make the mariadb client log in through
// the agent as user with a client certificate.
func (a *testAgent) cliArgs(t *testing.T, user, database string) []string {
	t.Helper()
	my := shared.MariaDB(t)
	cert, key := dbtest.ClientFiles(t, shared.CA(t), user)
	host, port, _ := net.SplitHostPort(a.addr())
	args := []string{
		"--no-defaults", "--protocol=TCP", "--host=" + host, "--port=" + port, "--user=" + user,
		"--ssl", "--ssl-ca=" + my.CAFile, "--ssl-cert=" + cert, "--ssl-key=" + key, "--ssl-verify-server-cert",
		"--connect-timeout=30",
	}
	if database != "" {
		args = append(args, "--database="+database)
	}
	return args
}

// runCLI runs the mariadb client with args and returns its output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("mariadb")
	if err != nil {
		if os.Getenv("PORTCULLIS_REQUIRE_DB") != "" {
			t.Fatal("the mariadb client is not installed (Debian package mariadb-client)")
		}
		t.Skip("the mariadb client is not installed (Debian package mariadb-client)")
	}
	out, err := exec.CommandContext(testContext(t), bin, args...).CombinedOutput()
	return string(out), err
}

func TestCLISelect(t *testing.T) {
	a, _ := newTestAgent(t)
	out, err := runCLI(t, append(a.cliArgs(t, "alice", "app"), "-e", "select 42")...)
	if err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}
	if !strings.Contains(out, "42") {
		t.Errorf("output %q lacks 42", out)
	}
	s := a.lastSession(t, true)
	t.Logf("caps %x plugin %q responded %v charset %d attrs %v err %v", s.hello.Capabilities, s.hello.AuthPlugin, s.hello.AuthResponded, s.hello.Charset, s.hello.Attributes, s.err)
	checkTranscript(t, a.rec, []string{"query select 42"})
}
