package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/client"
)

const password = "correct horse battery"

func TestUsersAddWithPasswordAndList(t *testing.T) {
	c := newTestCluster(t)
	out := c.mustPctl(t, password+"\n", "users", "add", "alice", "--roles", "access",
		"--db-users", "alice,app", "--db-names", "app", "--password-stdin")
	if !strings.Contains(out, "User alice added with roles access.") {
		t.Errorf("users add printed %q", out)
	}

	out = c.mustPctl(t, "", "users", "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("users ls printed %q", out)
	}
	if f := strings.Fields(lines[1]); len(f) < 6 || f[0] != "alice" || f[1] != "access" || f[2] != "alice,app" || f[3] != "app" || f[5] != "active" {
		t.Errorf("users ls row %q", lines[1])
	}

	var users []authclient.User
	if err := json.Unmarshal([]byte(c.mustPctl(t, "", "users", "ls", "--format", "json")), &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || !slices.Equal(users[0].Traits["db_users"], []string{"alice", "app"}) {
		t.Errorf("users ls --format json = %+v", users)
	}

	// The password works.
	if _, err := client.Login(context.Background(), client.LoginRequest{
		ProxyAddr: c.Addr, Username: "alice", Password: password, CAPin: c.HostPin(),
	}, client.WithHome(t.TempDir())); err != nil {
		t.Errorf("login with the password set by users add: %v", err)
	}

	_, errOut, code := c.pctl(t, "", "users", "add", "alice", "--roles", "access", "--password-stdin")
	if code != 1 || !strings.Contains(errOut, "no password on stdin") {
		t.Errorf("users add without a password on stdin: exit %d, %q", code, errOut)
	}
	_, errOut, code = c.pctl(t, password+"\n", "users", "add", "alice", "--roles", "access", "--password-stdin")
	if code != 1 || !strings.Contains(errOut, "exists already") {
		t.Errorf("adding alice twice: exit %d, %q", code, errOut)
	}
}

func TestUsersAddPrintsSignupCommand(t *testing.T) {
	c := newTestCluster(t)
	out := c.mustPctl(t, "", "users", "add", "bob", "--roles", "access", "--ttl", "2h")
	m := regexp.MustCompile(`pcl signup --proxy (\S+) --token (\S+) --ca-pin (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("users add printed no sign-up command: %q", out)
	}
	if m[1] != c.Addr || m[3] != c.HostPin() || !strings.Contains(out, "expires at") {
		t.Errorf("users add printed %q", out)
	}
	user, err := client.Signup(context.Background(), client.SignupRequest{
		ProxyAddr: m[1], Token: m[2], CAPin: m[3], Password: password,
	}, client.WithHome(t.TempDir()))
	if err != nil || user != "bob" {
		t.Fatalf("signing up with the printed command: %q, %v", user, err)
	}
	out = c.mustPctl(t, "", "users", "ls")
	if !strings.Contains(out, "active") {
		t.Errorf("bob is not active after sign-up: %q", out)
	}

	out = c.mustPctl(t, "", "users", "add", "carol", "--roles", "access", "--proxy", "proxy.example.com:3080")
	if !strings.Contains(out, "pcl signup --proxy proxy.example.com:3080 --token ") {
		t.Errorf("--proxy is not in the printed command: %q", out)
	}
}

func TestUsersUpdateAndRemove(t *testing.T) {
	c := newTestCluster(t)
	c.mustPctl(t, password+"\n", "users", "add", "alice", "--roles", "access", "--db-users", "alice", "--db-names", "app", "--password-stdin")

	_, errOut, code := c.pctl(t, "", "users", "update", "alice")
	if code != 1 || !strings.Contains(errOut, "nothing to change") {
		t.Errorf("users update without flags: exit %d, %q", code, errOut)
	}
	c.mustPctl(t, "", "users", "update", "alice", "--roles", "access,editor", "--db-users", "alice,ro")
	var users []authclient.User
	if err := json.Unmarshal([]byte(c.mustPctl(t, "", "users", "ls", "--format", "json")), &users); err != nil {
		t.Fatal(err)
	}
	u := users[0]
	if !slices.Equal(u.Roles, []string{"access", "editor"}) || !slices.Equal(u.Traits["db_users"], []string{"alice", "ro"}) ||
		!slices.Equal(u.Traits["db_names"], []string{"app"}) {
		t.Errorf("after update: %+v", u)
	}

	out := c.mustPctl(t, "", "users", "rm", "alice")
	if !strings.Contains(out, "User alice removed.") {
		t.Errorf("users rm printed %q", out)
	}
	if out := c.mustPctl(t, "", "users", "ls"); strings.Contains(out, "alice") {
		t.Errorf("alice is still listed: %q", out)
	}
	_, errOut, code = c.pctl(t, "", "users", "rm", "alice")
	if code != 1 || errOut != "error: user \"alice\" does not exist\n" {
		t.Errorf("removing alice twice: exit %d, %q", code, errOut)
	}
	_, errOut, code = c.pctl(t, "", "users", "rm")
	if code != 1 || !strings.Contains(errOut, "needs the user's name") {
		t.Errorf("users rm without a name: exit %d, %q", code, errOut)
	}
}

const dbaRole = `kind: role
version: v1
metadata:
  name: dba
  description: every database as postgres
spec:
  allow:
    db_labels: {"*": "*"}
    db_users: [postgres]
    db_names: ["*"]
`

func TestRolesFromYAML(t *testing.T) {
	c := newTestCluster(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "role.yaml")
	if err := os.WriteFile(file, []byte(dbaRole), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := c.mustPctl(t, "", "roles", "create", "-f", file); out != "Role dba created.\n" {
		t.Errorf("roles create printed %q", out)
	}
	if out := c.mustPctl(t, "", "roles", "ls"); !regexp.MustCompile(`(?m)^dba\s+every database as postgres$`).MatchString(out) {
		t.Errorf("roles ls printed %q", out)
	}

	got, err := policy.ParseRole([]byte(c.mustPctl(t, "", "roles", "get", "dba")))
	if err != nil {
		t.Fatalf("roles get printed YAML that does not parse: %v", err)
	}
	want, _ := policy.ParseRole([]byte(dbaRole))
	if !slices.Equal(got.Spec.Allow.DBUsers, want.Spec.Allow.DBUsers) || got.Metadata != want.Metadata {
		t.Errorf("roles get = %+v, want %+v", got, want)
	}
	all, err := policy.ParseRoles([]byte(c.mustPctl(t, "", "roles", "ls", "--format", "yaml")))
	if err != nil || len(all) != 4 {
		t.Errorf("roles ls --format yaml: %d roles, %v", len(all), err)
	}

	_, errOut, code := c.pctl(t, "", "roles", "create", "-f", file)
	if code != 1 || !strings.Contains(errOut, "exists already") {
		t.Errorf("creating dba twice: exit %d, %q", code, errOut)
	}
	// roles update replaces it, from stdin.
	c.mustPctl(t, strings.Replace(dbaRole, "as postgres", "as the superuser", 1), "roles", "update", "-f", "-")
	if out := c.mustPctl(t, "", "roles", "get", "dba"); !strings.Contains(out, "as the superuser") {
		t.Errorf("roles update did not replace the role: %q", out)
	}

	// A mistake is reported locally with the file, line and field.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(dbaRole, "db_users:", "db_userz:", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = c.pctl(t, "", "roles", "create", "-f", bad)
	if code != 1 || !strings.HasPrefix(errOut, "error: "+bad+": ") || !strings.Contains(errOut, "db_userz") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("a bad role file: exit %d, %q", code, errOut)
	}

	c.mustPctl(t, "", "roles", "rm", "dba")
	if _, errOut, code := c.pctl(t, "", "roles", "get", "dba"); code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("roles get after rm: exit %d, %q", code, errOut)
	}
}

func TestTokens(t *testing.T) {
	c := newTestCluster(t)
	out := c.mustPctl(t, "", "tokens", "add", "--type", "db", "--ttl", "1h", "--once")
	m := regexp.MustCompile(`(?m)^  join_token: (\S+)$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "one database agent") {
		t.Fatalf("tokens add printed %q", out)
	}
	secret := m[1]
	id := regexp.MustCompile(`pctl tokens rm (\S+)`).FindStringSubmatch(out)[1]

	out = c.mustPctl(t, "", "tokens", "ls")
	if !regexp.MustCompile(`(?m)^`+id+`\s+db\s+once\s`).MatchString(out) || strings.Contains(out, secret) {
		t.Errorf("tokens ls printed %q", out)
	}
	c.mustPctl(t, "", "tokens", "rm", id)
	if out := c.mustPctl(t, "", "tokens", "ls"); strings.Contains(out, id) {
		t.Errorf("the token is listed after rm: %q", out)
	}
	if _, errOut, code := c.pctl(t, "", "tokens", "add", "--type", "auth"); code != 1 || !strings.Contains(errOut, "--type must be db") {
		t.Errorf("tokens add --type auth: exit %d, %q", code, errOut)
	}
}

func TestLocks(t *testing.T) {
	c := newTestCluster(t)
	out := c.mustPctl(t, "", "locks", "add", "--user", "alice", "--message", "under investigation", "--ttl", "1h")
	m := regexp.MustCompile(`pctl locks rm (\S+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "Locked user alice until ") {
		t.Fatalf("locks add printed %q", out)
	}
	out = c.mustPctl(t, "", "locks", "ls")
	if !strings.Contains(out, m[1]) || !strings.Contains(out, "user alice") || !strings.Contains(out, "under investigation") {
		t.Errorf("locks ls printed %q", out)
	}
	c.mustPctl(t, "", "locks", "rm", m[1])
	if out := c.mustPctl(t, "", "locks", "ls"); strings.Contains(out, m[1]) {
		t.Errorf("the lock is listed after rm: %q", out)
	}
	if _, errOut, code := c.pctl(t, "", "locks", "add"); code != 1 || !strings.Contains(errOut, "--user or --role") {
		t.Errorf("locks add without a target: exit %d, %q", code, errOut)
	}
}

func TestAuthExport(t *testing.T) {
	c := newTestCluster(t)
	for _, typ := range []ca.AuthorityType{ca.UserCA, ca.HostCA, ca.DatabaseCA} {
		out := c.mustPctl(t, "", "auth", "export", "--type", string(typ))
		certs, err := ca.ParseCertsPEM([]byte(out))
		if err != nil || len(certs) != 1 {
			t.Fatalf("auth export --type %s: %d certs, %v", typ, len(certs), err)
		}
		if got, want := ca.Fingerprint(certs[0]), c.Server.Authority(typ).Fingerprint(); got != want {
			t.Errorf("auth export --type %s: %s, want %s", typ, got, want)
		}
	}
	if _, errOut, code := c.pctl(t, "", "auth", "export", "--type", "ssh"); code != 1 || !strings.Contains(errOut, "user, host or db") {
		t.Errorf("auth export --type ssh: exit %d, %q", code, errOut)
	}
}

func TestAuthSignDatabaseServer(t *testing.T) {
	c := newTestCluster(t)
	prefix := filepath.Join(t.TempDir(), "pg")
	out := c.mustPctl(t, "", "auth", "sign", "--format", "db", "--host", "db.example.com,10.0.0.5", "--out", prefix)
	for _, want := range []string{
		"ssl_cert_file = '" + prefix + ".crt'",
		"ssl_key_file = '" + prefix + ".key'",
		"ssl_ca_file = '" + prefix + ".cas'",
		"hostssl all all 0.0.0.0/0 cert",
		"ssl-cert = " + prefix + ".crt",
		"ssl-key = " + prefix + ".key",
		"ssl-ca = " + prefix + ".cas",
		"REQUIRE SUBJECT '/CN=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("auth sign output lacks %q:\n%s", want, out)
		}
	}
	for ext, want := range map[string]os.FileMode{".crt": 0o644, ".key": 0o600, ".cas": 0o644} {
		st, err := os.Stat(prefix + ext)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", prefix+ext, st.Mode().Perm(), want)
		}
	}
	certPEM, _ := os.ReadFile(prefix + ".crt")
	keyPEM, _ := os.ReadFile(prefix + ".key")
	casPEM, _ := os.ReadFile(prefix + ".cas")
	cert, err := ca.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "db.example.com" || !slices.Contains(cert.DNSNames, "db.example.com") ||
		len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "10.0.0.5" {
		t.Errorf("certificate CN %q, DNS %v, IPs %v", cert.Subject.CommonName, cert.DNSNames, cert.IPAddresses)
	}
	key, err := ca.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
		t.Errorf("the key does not belong to the certificate")
	}
	cas, err := ca.ParseCertsPEM(casPEM)
	if err != nil || len(cas) != 1 || ca.Fingerprint(cas[0]) != c.Server.Authority(ca.DatabaseCA).Fingerprint() {
		t.Fatalf("the .cas file does not hold the database CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cas[0])
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "db.example.com", Roots: pool}); err != nil {
		t.Errorf("the certificate does not verify against the .cas file: %v", err)
	}
	if time.Until(cert.NotAfter) < 80*24*time.Hour {
		t.Errorf("the certificate expires %v, want about 90 days", cert.NotAfter)
	}

	if _, errOut, code := c.pctl(t, "", "auth", "sign", "--format", "db", "--out", prefix); code != 1 || !strings.Contains(errOut, "--host") {
		t.Errorf("auth sign without --host: exit %d, %q", code, errOut)
	}
}

func TestStatus(t *testing.T) {
	c := newTestCluster(t)
	c.mustPctl(t, password+"\n", "users", "add", "alice", "--roles", "access", "--password-stdin")
	out := c.mustPctl(t, "", "status")
	pins := regexp.MustCompile(`(?m)^\s+(user|host|db)\s+(sha256:[0-9a-f]{64})\s`).FindAllStringSubmatch(out, -1)
	if len(pins) != 3 {
		t.Fatalf("status printed %d pins: %q", len(pins), out)
	}
	for _, p := range pins {
		if want := c.Server.Authority(ca.AuthorityType(p[1])).Fingerprint(); p[2] != want {
			t.Errorf("%s pin %s, want %s", p[1], p[2], want)
		}
	}
	for _, want := range []string{"Cluster:", "test", "Users:", "1", "Databases:", "--ca-pin " + c.HostPin()} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q: %q", want, out)
		}
	}
	var st authclient.StatusResponse
	if err := json.Unmarshal([]byte(c.mustPctl(t, "", "status", "--format", "json")), &st); err != nil || st.Users != 1 || len(st.CAs) != 3 {
		t.Errorf("status --format json: %+v, %v", st, err)
	}
}

func TestDatabaseList(t *testing.T) {
	c := newTestCluster(t)
	if out := c.mustPctl(t, "", "db", "ls"); strings.TrimSpace(out) != "NAME  PROTOCOL  LABELS  AGENT  LAST HEARTBEAT" {
		t.Errorf("db ls on an empty inventory printed %q", out)
	}

	// An agent joins with a token and advertises a database.
	out := c.mustPctl(t, "", "tokens", "add", "--type", "db")
	secret := regexp.MustCompile(`(?m)^  join_token: (\S+)$`).FindStringSubmatch(out)[1]
	agent, resp, _ := c.JoinWithToken(t, secret, ca.SystemRoleDatabase, "agent-1")
	if _, err := parseCertList(resp.HostCAs); err != nil {
		t.Fatal(err)
	}
	err := agent.Heartbeat(context.Background(), authclient.HeartbeatRequest{Databases: []authclient.Database{
		{Name: "pg1", Protocol: "postgres", URI: "localhost:5432", Labels: map[string]string{"env": "dev", "team": "a"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out = c.mustPctl(t, "", "db", "ls")
	if !regexp.MustCompile(`(?m)^pg1\s+postgres\s+env=dev,team=a\s+agent-1\s+\S+ ago$`).MatchString(out) {
		t.Errorf("db ls printed %q", out)
	}
	var dbs []authclient.Database
	if err := json.Unmarshal([]byte(c.mustPctl(t, "", "db", "ls", "--format", "json")), &dbs); err != nil || len(dbs) != 1 || dbs[0].HostID != "agent-1" {
		t.Errorf("db ls --format json: %+v, %v", dbs, err)
	}
	if out := c.mustPctl(t, "", "status"); !regexp.MustCompile(`Databases:\s+1\n`).MatchString(out) {
		t.Errorf("status does not count the database: %q", out)
	}
}

func TestConnection(t *testing.T) {
	c := newTestCluster(t)
	run1 := func(env map[string]string, args ...string) (string, string, int) {
		var out, errOut strings.Builder
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut, func(k string) string { return env[k] })
		return out.String(), errOut.String(), code
	}
	// Nothing says where the Auth service is.
	_, errOut, code := run1(nil, "status")
	if code != 1 || !strings.Contains(errOut, "--data-dir") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("status without a data dir: exit %d, %q", code, errOut)
	}
	// --data-dir as a flag.
	if out, errOut, code := run1(nil, "--data-dir", c.Dir, "status"); code != 0 || !strings.Contains(out, "Cluster:") {
		t.Errorf("status --data-dir: exit %d, %q", code, errOut)
	}
	// --auth and --identity from elsewhere.
	idPath := filepath.Join(c.Dir, auth.AdminIdentityFile)
	if out, errOut, code := run1(nil, "--auth", c.Addr, "--identity", idPath, "status"); code != 0 || !strings.Contains(out, "Cluster:") {
		t.Errorf("status --auth --identity: exit %d, %q", code, errOut)
	}
	// A data dir without the address file.
	empty := t.TempDir()
	if _, errOut, code := run1(nil, "--data-dir", empty, "status"); code != 1 || !strings.Contains(errOut, auth.AddrFile+" does not exist") {
		t.Errorf("status with an empty data dir: exit %d, %q", code, errOut)
	}
	// An unknown flag.
	if _, errOut, code := run1(nil, "users", "ls", "--bogus"); code != 1 || !strings.Contains(errOut, "unknown flag: --bogus; see pctl users ls --help") {
		t.Errorf("unknown flag: exit %d, %q", code, errOut)
	}
	if _, errOut, code := run1(nil, "users", "ls", "--format", "xml"); code != 1 || !strings.Contains(errOut, "not one of text, json") {
		t.Errorf("--format xml: exit %d, %q", code, errOut)
	}
}

func TestReadAddrFile(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:3025\n":    "127.0.0.1:3025",
		"0.0.0.0:3025":        "127.0.0.1:3025",
		"[::]:3025\n":         "[::1]:3025",
		":3025":               "127.0.0.1:3025",
		"auth.example.com:25": "auth.example.com:25",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, auth.AddrFile), []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readAddrFile(dir)
		if err != nil || got != want {
			t.Errorf("readAddrFile(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
