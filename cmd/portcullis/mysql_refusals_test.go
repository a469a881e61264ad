package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/protocol/mysql"
)

// TestMySQLRefusalsThroughTheCluster checks each way a MySQL session is
// refused: the mariadb client prints one sentence that a person can act
// on, no statement runs, and the audit log holds a db.session.start that
// failed with that sentence, under the user's name.
func TestMySQLRefusalsThroughTheCluster(t *testing.T) {
	t.Parallel()
	requireMariaDBClient(t)
	c := startMyClusterWith(t, myClusterOptions{users: []string{"bob", "carol"}})
	ctx := context.Background()

	// Changes that reach the proxy and the agent within seconds (their
	// lock and policy caches) are made together up front, so that the
	// subtests wait for them at the same time.

	// bob holds a role from the start that denies him only after his
	// route certificate was issued, so that the agent's check is what
	// refuses him; carol is locked after she got in once.
	restricted := &policy.Role{Kind: policy.KindRole, Version: policy.VersionV1,
		Metadata: policy.Metadata{Name: "restricted"},
		Spec:     policy.RoleSpec{Deny: policy.RoleConditions{DBUsers: []string{"root"}}}}
	if err := c.admin.CreateRole(ctx, restricted); err != nil {
		t.Fatal(err)
	}
	bob := c.addUser(t, "bob", []string{"access", "restricted"})
	carol := c.addUser(t, "carol", []string{"access"})
	for _, u := range []*myUser{bob, carol} {
		if err := u.ping(t, nil); err != nil {
			t.Fatalf("%s before the change: %v", u.name, err)
		}
	}
	restricted.Spec.Deny.DBUsers = []string{"bob"}
	if err := c.admin.UpsertRole(ctx, restricted); err != nil {
		t.Fatal(err)
	}
	if _, err := c.admin.CreateLock(ctx, authclient.CreateLockRequest{Target: policy.LockTarget{User: "carol"}, Message: "suspicious activity"}); err != nil {
		t.Fatal(err)
	}
	// A route certificate of alice's that lives one second.
	expired, notAfter := c.alice.shortRoute(t)

	t.Run("plaintext", func(t *testing.T) {
		// The client's arguments turn TLS on; these turn it off again.
		stdout, stderr, err := c.alice.mariadb(t, nil, "--skip-ssl-verify-server-cert", "--skip-ssl", "-N", "-B", "-e", "select 'must not run'")
		want := "ERROR 3159 (HY000): " + mysql.TLSRequiredMessage
		if err == nil || stdout != "" || strings.TrimSpace(stderr) != want {
			t.Errorf("mariadb --skip-ssl: %v\n%s%s\nwant the one line: %s", err, stdout, stderr, want)
		}
		// Without TLS there is no certificate, so the refusal is recorded
		// under the database user the client asked for, by no Portcullis
		// user.
		pg := &pgCluster{admin: c.admin}
		pg.searchAudit(t, authclient.AuditQuery{Types: []string{"db.session.start"}}, "the plaintext refusal", func(evs []auditEvent) bool {
			for _, e := range evs {
				if e.str("error") == mysql.TLSRequiredMessage && e.str("db_user") == "alice" && e.str("user") == "" && !e.ok() {
					return true
				}
			}
			return false
		})
	})

	t.Run("database name outside the certificate", func(t *testing.T) {
		const sentence = `this certificate is for database name "app", not "other"; run pcl db login my1 --db-name other`
		c.checkRefusal(t, c.alice, nil, byProxy, "1045 (28000)", sentence, "--database=other")
	})

	t.Run("denied by a role after the route certificate was issued", func(t *testing.T) {
		const sentence = `access to database "my1" as db user "bob" with db name "app" denied: role "restricted" denies db user "bob"`
		bob.waitRefused(t, nil, sentence)
		c.checkRefusal(t, bob, nil, byAgent, "1045 (28000)", sentence)
	})

	t.Run("expired certificate", func(t *testing.T) {
		waitFor(t, "the certificate to expire", 30*time.Second, func() bool { return time.Now().After(notAfter.Add(time.Second)) })
		sentence := fmt.Sprintf("your certificate expired at %s; run pcl login, then pcl db login", notAfter.UTC().Format(time.RFC3339))
		c.checkRefusal(t, c.alice, expired, byProxy, "1045 (28000)", sentence)
	})

	t.Run("locked user", func(t *testing.T) {
		const sentence = "user carol is locked: suspicious activity; ask an administrator to remove the lock"
		carol.waitRefused(t, nil, sentence)
		c.checkRefusal(t, carol, nil, "", "1045 (28000)", sentence)
	})

	t.Run("no agent serves the database", func(t *testing.T) {
		// my9 is served by a second agent while alice gets her route
		// certificate for it; then that agent goes away.
		tok, err := c.admin.CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"})
		if err != nil {
			t.Fatal(err)
		}
		agent2 := startDaemon(t, fmt.Sprintf(`
data_dir: %s
db:
  enabled: true
  proxy_addr: %q
  join_token: %q
  host_id: agent-my9
  heartbeat_interval: 1s
  databases:
    - {name: my9, protocol: mysql, uri: %q}
`, t.TempDir(), c.proxyAddr, tok.Secret, c.db.Addr()))
		waitFor(t, "my9 in the inventory", 20*time.Second, func() bool {
			dbs, err := c.admin.ListDatabases(ctx)
			return err == nil && len(dbs) == 2
		})
		cfg := c.alice.route(t, "my9")
		agent2.stop(t)
		const sentence = `database "my9" is not available: no agent serving it is connected to this proxy; pcl db ls lists the databases you can reach`
		c.alice.waitRefused(t, cfg, sentence)
		c.checkRefusal(t, c.alice, cfg, byProxy, "1105 (HY000)", sentence)
	})

	t.Run("database down", func(t *testing.T) {
		if err := c.db.Stop(); err != nil {
			t.Fatal(err)
		}
		c.checkRefusal(t, c.alice, nil, byAgent, "1105 (HY000)", `database "my1" is down or unreachable from its agent; try again later`)
	})
}

// shortRoute signs u a route certificate for my1 that lives one second
// and returns the connection settings that use it, and its expiry.
func (u *myUser) shortRoute(t *testing.T) (*client.DatabaseConfig, time.Time) {
	t.Helper()
	ctx := context.Background()
	ac, err := u.profile.AuthClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	tc, err := u.profile.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := authclient.MarshalPublicKey(tc.Leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ac.SignRoute(ctx, authclient.RouteRequest{PublicKey: pub, ServiceName: "my1", Protocol: "mysql",
		DBUser: u.name, DBName: "app", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ParseCertPEM([]byte(resp.Cert))
	if err != nil {
		t.Fatal(err)
	}
	cfg := *u.cfg
	cfg.CertFile = filepath.Join(t.TempDir(), "short.crt")
	if err := os.WriteFile(cfg.CertFile, []byte(resp.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	return &cfg, cert.NotAfter
}

// ping opens a session as u with go-sql-driver and closes it.
func (u *myUser) ping(t *testing.T, cfg *client.DatabaseConfig) error {
	t.Helper()
	mc := u.driverConfig(t, cfg)
	db := openDB(t, mc)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// waitRefused connects as u (with cfg, u's own when nil) until the session is refused with sentence:
// a change of roles or locks reaches the proxy and the agent within
// seconds, not at once.
func (u *myUser) waitRefused(t *testing.T, cfg *client.DatabaseConfig, sentence string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := u.ping(t, cfg)
		switch {
		case err != nil && strings.Contains(err.Error(), sentence):
			return
		case time.Now().After(deadline):
			t.Fatalf("the session of %s was not refused with %q; last attempt: %v", u.name, sentence, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkRefusal runs the mariadb client as u (with cfg, u's own when nil,
// and args) and checks that it is refused with sentence: the client
// prints it as the one line "ERROR code: sentence", and the refused
// session is audited with it, with no statement, by the agent or the
// proxy as by says ("" for either).
func (c *myCluster) checkRefusal(t *testing.T, u *myUser, cfg *client.DatabaseConfig, by, code, sentence string, args ...string) {
	t.Helper()
	s := c.sessions(t, u.name, 1, func() {
		stdout, stderr, err := u.mariadb(t, cfg, append(args, "-N", "-B", "-e", "select 'must not run'")...)
		if want := "ERROR " + code + ": " + sentence; err == nil || stdout != "" || strings.TrimSpace(stderr) != want {
			t.Errorf("mariadb: %v\n%s%s\nwant the one line: %s", err, stdout, stderr, want)
		}
	})
	checkMySession(t, s[0], "start refused: "+sentence)
	switch from := s[0][0].str("forwarded_by"); {
	case by == byAgent && from != "agent-my", by == byProxy && (from == "" || from == "agent-my"):
		t.Errorf("the refusal was recorded by %q; want the %s", from, by)
	}
}
