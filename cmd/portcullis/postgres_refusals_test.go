package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/client"
)

// TestPostgresRefusalsThroughTheCluster checks each way a session is
// refused, through the whole cluster: psql shows one sentence the person
// can act on, no statement runs, and the audit log holds a
// db.session.start that failed with that sentence, under the user's name.
func TestPostgresRefusalsThroughTheCluster(t *testing.T) {
	requirePsql(t)
	c := startPGCluster(t)
	ctx := context.Background()

	// A role that bob holds from the start; it denies him only after his
	// route certificate was issued, so that the agent's check is what
	// refuses him.
	restricted := &policy.Role{Kind: policy.KindRole, Version: policy.VersionV1,
		Metadata: policy.Metadata{Name: "restricted"},
		Spec:     policy.RoleSpec{Deny: policy.RoleConditions{DBUsers: []string{"root"}}}}
	if err := c.admin.CreateRole(ctx, restricted); err != nil {
		t.Fatal(err)
	}

	t.Run("denied by a role after the route certificate was issued", func(t *testing.T) {
		bob := c.addUser(t, "bob", []string{"access", "restricted"})
		// bob gets in, so the agent holds the roles as they were.
		bob.connect(t).Close(ctx)
		restricted.Spec.Deny.DBUsers = []string{"bob"}
		if err := c.admin.UpsertRole(ctx, restricted); err != nil {
			t.Fatal(err)
		}
		const sentence = `access to database "pg1" as db user "bob" with db name "app" denied: role "restricted" denies db user "bob"`
		// The agent reads roles again within seconds (dbagent's policy
		// cache); until then bob still gets in.
		bob.waitRefused(t, sentence)
		c.checkRefusal(t, bob, nil, byAgent, sentence)
		// The auth service refuses him a new route certificate too, in
		// the same words.
		_, err := bob.profile.DatabaseLogin(ctx, "pg1", "bob", "app")
		if err == nil || !strings.Contains(err.Error(), sentence) {
			t.Errorf("a new route certificate for bob: %v; want %q", err, sentence)
		}
	})

	t.Run("db user outside the traits", func(t *testing.T) {
		// The auth service does not sign a route the roles do not allow.
		_, err := c.alice.profile.DatabaseLogin(ctx, "pg1", "postgres", "app")
		const sentence = `access to database "pg1" as db user "postgres" with db name "app" denied: no role allows db user "postgres" on database "pg1" (allowed: alice)`
		if err == nil || !strings.Contains(err.Error(), sentence) {
			t.Errorf("a route certificate as db user postgres: %v; want %q", err, sentence)
		}
	})

	t.Run("expired certificate", func(t *testing.T) {
		// A route certificate that lives one second.
		ac, err := c.alice.profile.AuthClient(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer ac.Close()
		tc, err := c.alice.profile.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := authclient.MarshalPublicKey(tc.Leaf.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ac.SignRoute(ctx, authclient.RouteRequest{PublicKey: pub, ServiceName: "pg1", Protocol: "postgres",
			DBUser: "alice", DBName: "app", TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cert, err := ca.ParseCertPEM([]byte(resp.Cert))
		if err != nil {
			t.Fatal(err)
		}
		cfg := *c.alice.cfg
		cfg.CertFile = filepath.Join(t.TempDir(), "short.crt")
		if err := os.WriteFile(cfg.CertFile, []byte(resp.Cert), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the certificate to expire", 30*time.Second, func() bool { return time.Now().After(cert.NotAfter.Add(time.Second)) })
		sentence := fmt.Sprintf("your certificate expired at %s; run pcl login, then pcl db login", cert.NotAfter.UTC().Format(time.RFC3339))
		c.checkRefusal(t, c.alice, &cfg, byProxy, sentence)
	})

	t.Run("locked user", func(t *testing.T) {
		carol := c.addUser(t, "carol", []string{"access"})
		conn := carol.connect(t) // carol gets in before the lock
		conn.Close(ctx)
		if _, err := c.admin.CreateLock(ctx, authclient.CreateLockRequest{Target: policy.LockTarget{User: "carol"}, Message: "suspicious activity"}); err != nil {
			t.Fatal(err)
		}
		const sentence = "user carol is locked: suspicious activity; ask an administrator to remove the lock"
		// The proxy and the agent read locks again within seconds.
		carol.waitRefused(t, sentence)
		c.checkRefusal(t, carol, nil, "", sentence)
	})

	t.Run("unknown database", func(t *testing.T) {
		// pg2 is served by a second agent while alice gets her route
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
  host_id: agent-pg2
  heartbeat_interval: 1s
  databases:
    - {name: pg2, protocol: postgres, uri: %q}
`, t.TempDir(), c.proxyAddr, tok.Secret, c.pg.Addr()))
		waitFor(t, "pg2 in the inventory", 20*time.Second, func() bool {
			dbs, err := c.admin.ListDatabases(ctx)
			return err == nil && len(dbs) == 2
		})
		if _, err := c.alice.profile.DatabaseLogin(ctx, "pg2", "alice", "app"); err != nil {
			t.Fatal(err)
		}
		cfg, err := c.alice.profile.DatabaseConfig(ctx, "pg2")
		if err != nil {
			t.Fatal(err)
		}
		agent2.stop(t)
		alice := &pgUser{name: "alice", profile: c.alice.profile, home: c.alice.home, cfg: cfg}
		const sentence = `database "pg2" is not available: no agent serving it is connected to this proxy; pcl db ls lists the databases you can reach`
		alice.waitRefused(t, sentence)
		c.checkRefusal(t, alice, cfg, byProxy, sentence)
	})

	t.Run("database down", func(t *testing.T) {
		if err := c.pg.Stop(); err != nil {
			t.Fatal(err)
		}
		c.checkRefusal(t, c.alice, nil, byAgent, `database "pg1" is down or unreachable from its agent; try again later`)
	})
}

// waitRefused connects with pgx as u until the session is refused with
// sentence: a change of roles or locks reaches the proxy and the agent
// within seconds, not at once.
func (u *pgUser) waitRefused(t *testing.T, sentence string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		conn, err := pgx.ConnectConfig(ctx, u.pgxConfig(t))
		if err == nil {
			conn.Close(ctx)
		}
		cancel()
		switch {
		case err != nil && strings.Contains(err.Error(), sentence):
			return
		case time.Now().After(deadline):
			t.Fatalf("the session of %s was not refused with %q; last attempt: %v", u.name, sentence, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Who refuses a session, for checkRefusal: the events name the host
// that forwarded them.
const (
	byAgent = "agent"
	byProxy = "proxy"
)

// checkRefusal runs psql as u (with cfg, u's own when nil) and checks that
// it is refused with sentence: psql shows it as the one line of its
// error, and the refused session is audited with it, with no statement,
// by the agent or the proxy as by says ("" for either).
func (c *pgCluster) checkRefusal(t *testing.T, u *pgUser, cfg *client.DatabaseConfig, by, sentence string) {
	t.Helper()
	s := c.sessions(t, u.name, 1, func() {
		stdout, stderr, err := u.psql(t, cfg, "-X", "-c", "select 'must not run'")
		if err == nil || stdout != "" {
			t.Errorf("psql was not refused: %v\n%s", err, stdout)
		}
		line := strings.TrimSpace(stderr)
		if strings.Contains(line, "\n") || !strings.HasSuffix(line, "FATAL:  "+sentence) {
			t.Errorf("psql showed:\n%s\nwant one line ending in FATAL:  %s", stderr, sentence)
		}
	})
	checkSession(t, s[0], "start refused: "+sentence)
	switch from := s[0][0].str("forwarded_by"); {
	case by == byAgent && from != "agent-pg", by == byProxy && (from == "" || from == "agent-pg"):
		t.Errorf("the refusal was recorded by %q; want the %s", from, by)
	}
}
