package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/client/bench"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// benchServer is a real database standing where the proxy's listener
// will, as in TestDBConnectRealPsql: it presents the proxy's host
// certificate and trusts the cluster's user CA, so the route certificate
// logs in through "the proxy", and also a database CA, so a direct DSN
// logs in with a certificate of its own.
type benchServer struct {
	prefix string        // the server files
	dbCA   *ca.Authority // signs direct client certificates
	hostCA string        // the host CA file that verifies the server
}

func newBenchServer(t *testing.T, c *testCluster) *benchServer {
	t.Helper()
	s := &benchServer{prefix: filepath.Join(t.TempDir(), "server"), dbCA: dbtest.NewDatabaseCA(t)}
	proxyCert := c.ProxyCertificate(t)
	trusted := []*x509.Certificate{c.Server.Authority(ca.UserCA).Cert, s.dbCA.Cert}
	if err := ca.WriteDatabaseServerFiles(s.prefix, proxyCert.Leaf.Raw, proxyCert.PrivateKey.(crypto.Signer), trusted); err != nil {
		t.Fatal(err)
	}
	s.hostCA = filepath.Join(t.TempDir(), "host-ca.pem")
	if err := os.WriteFile(s.hostCA, c.Server.Authority(ca.HostCA).CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// throughputs reads the throughput line of a text report: one figure per
// run and the ratio, if any.
var throughputLine = regexp.MustCompile(`(?m)^throughput +([\d,]+)/s(?: +([\d,]+)/s +([\d.]+)×)?$`)

func perSecond(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func checkSideBySide(t *testing.T, out string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^ +direct +portcullis +portcullis vs direct$`).MatchString(out) {
		t.Errorf("no direct and portcullis columns:\n%s", out)
	}
	m := throughputLine.FindStringSubmatch(out)
	if m == nil || m[2] == "" {
		t.Fatalf("no throughput of both runs:\n%s", out)
	}
	if perSecond(t, m[1]) == 0 || perSecond(t, m[2]) == 0 {
		t.Errorf("a throughput is zero:\n%s", out)
	}
	for _, re := range []string{`(?m)^errors +0 +0$`, `latency of direct \(`, `latency of portcullis \(`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("the report does not match %s:\n%s", re, out)
		}
	}
	// The p50 line holds both runs' latencies and the signed difference,
	// each a duration in whatever unit suits it (the difference may be
	// "+0ns" when the medians fall in the same histogram bucket).
	p50 := regexp.MustCompile(`(?m)^latency p50 +(\S+) +(\S+) +(\S+)$`).FindStringSubmatch(out)
	if p50 == nil {
		t.Fatalf("no p50 line with both runs and the difference:\n%s", out)
	}
	for i, v := range p50[1:] {
		d, err := time.ParseDuration(v)
		if err != nil || (i < 2 && d <= 0) {
			t.Errorf("p50 column %d is %q, not a latency:\n%s", i+1, v, out)
		}
	}
}

func TestBenchPostgres(t *testing.T) {
	c := newDBCluster(t)
	s := newBenchServer(t, c)
	pg := dbtest.StartPostgres(t, dbtest.Options{CertPrefix: s.prefix, Users: []string{"alice"}, Databases: []string{"app"}})
	proxyAddr := c.StartFakeProxy(t, &authclient.ProxySettings{PostgresAddr: pg.Addr()})
	c.loginAs(t, proxyAddr, "alice")
	cert, key := dbtest.ClientFiles(t, s.dbCA, "alice")
	dsn := pg.DSN("alice", "app", cert, key)
	dsn = strings.Replace(dsn, "sslrootcert="+pg.CAFile, "sslrootcert="+s.hostCA, 1)

	out, errOut, code := c.pclText(t, "", "bench", "pg-dev", "--duration", "1s", "--direct", dsn)
	if code != 0 {
		t.Fatalf("pcl bench: exit %d: %s", code, errOut)
	}
	t.Logf("pcl bench printed:\n%s", out)
	checkSideBySide(t, out)
	if !strings.HasPrefix(out, "pg-dev (PostgreSQL) as db user alice, db name app: SELECT 1\n1 worker keeping its connection, for 1s; portcullis: the proxy at "+pg.Addr()+"; direct: "+pg.Addr()+"\n") {
		t.Errorf("title:\n%s", out)
	}
	if !strings.Contains(errOut, "Measuring pg-dev directly at ") || !strings.Contains(errOut, "Measuring pg-dev through the proxy at ") {
		t.Errorf("stderr %q", errOut)
	}

	// JSON, a connection per query, two workers, no direct run.
	out, errOut, code = c.pclText(t, "", "bench", "pg-dev", "--duration", "500ms", "--connect", "--concurrency", "2",
		"--query", "select generate_series(1, 100)", "--format", "json")
	if code != 0 {
		t.Fatalf("pcl bench --format json: exit %d: %s", code, errOut)
	}
	var rep struct {
		Title string
		Runs  []bench.Summary
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(rep.Runs) != 1 || rep.Runs[0].Name != "portcullis" || rep.Runs[0].Ops == 0 || rep.Runs[0].Errors != 0 ||
		!rep.Runs[0].Connect || rep.Runs[0].Concurrency != 2 || rep.Runs[0].Latency.P50 <= 0 {
		t.Errorf("json runs %+v", rep.Runs)
	}

	// Ctrl-C stops the run, prints what was measured and exits 130.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	var stdout, stderr bytes.Buffer
	env := map[string]string{"PORTCULLIS_HOME": c.home}
	a := newApp(strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
	code = a.execute(ctx, []string{"bench", "pg-dev", "--duration", "10m", "--direct", dsn})
	if code != interruptedCode || !strings.Contains(stderr.String(), "Interrupted") ||
		!strings.Contains(stdout.String(), "(interrupted)") || throughputLine.FindStringSubmatch(stdout.String()) == nil {
		t.Errorf("interrupted: exit %d, stdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}

	// Errors are one sentence.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--query", "SELEC 1", "--duration", "1m"}, `measuring pg-dev through the proxy at ` + pg.Addr() + ` failed: ERROR: syntax error at or near "SELEC"`},
		{[]string{"--direct", "mysql://alice@127.0.0.1/app"}, "--direct is a MySQL DSN but pg-dev is a PostgreSQL database; give a PostgreSQL DSN"},
		{[]string{"--direct", "127.0.0.1:5432"}, "--direct: a DSN is a postgres:// or mysql:// URL"},
		{[]string{"--direct", "host=127.0.0.1 port=1 user=alice dbname=app sslmode=disable"}, "measuring pg-dev directly at 127.0.0.1:1 failed: "},
		{[]string{"--concurrency", "0"}, "--concurrency 0 is not a number of workers"},
		{[]string{"--duration", "0s"}, "--duration 0s is not a time to measure for"},
		{[]string{"--query", " "}, "--query is empty"},
		{[]string{"--format", "yaml"}, `--format "yaml" is not one of text, json`},
	} {
		out, errOut, code := c.pclText(t, "", append([]string{"bench", "pg-dev"}, tc.args...)...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		last := lines[len(lines)-1]
		if code != 1 || out != "" || !strings.HasPrefix(last, "error: ") || !strings.Contains(last, tc.want) {
			t.Errorf("pcl bench %q: exit %d, stdout %q, stderr %q; want an error with %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestBenchMySQL(t *testing.T) {
	c := newDBCluster(t)
	s := newBenchServer(t, c)
	my := dbtest.StartMariaDB(t, dbtest.Options{CertPrefix: s.prefix, Users: []string{"alice"}, Databases: []string{"app"}})
	// dbtest's users log in only with the subject CN=alice; a route
	// certificate's subject also names the roles.
	my.Exec(t, "ALTER USER 'alice'@'%' REQUIRE X509")
	proxyAddr := c.StartFakeProxy(t, &authclient.ProxySettings{MySQLAddr: my.Addr()})
	c.loginAs(t, proxyAddr, "alice")
	c.mustPcl(t, "", "db", "login", "my-dev", "--db-user", "alice", "--db-name", "app")
	cert, key := dbtest.ClientFiles(t, s.dbCA, "alice")
	dsn := "mysql://alice@" + my.Addr() + "/app?ssl-ca=" + url.QueryEscape(s.hostCA) +
		"&ssl-cert=" + url.QueryEscape(cert) + "&ssl-key=" + url.QueryEscape(key)

	out, errOut, code := c.pclText(t, "", "bench", "my-dev", "--duration", "1s", "--direct", dsn)
	if code != 0 {
		t.Fatalf("pcl bench: exit %d: %s", code, errOut)
	}
	t.Logf("pcl bench printed:\n%s", out)
	checkSideBySide(t, out)
	if !strings.HasPrefix(out, "my-dev (MySQL) as db user alice, db name app: SELECT 1\n") {
		t.Errorf("title:\n%s", out)
	}
}
