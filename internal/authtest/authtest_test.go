package authtest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestClusterIdentities(t *testing.T) {
	c := authtest.Start(t, authtest.WithConfig(func(cfg *auth.Config) { cfg.SecondFactor = "off" }))
	ctx := context.Background()
	if addr, err := os.ReadFile(filepath.Join(c.Dir, auth.AddrFile)); err != nil || strings.TrimSpace(string(addr)) != c.Addr {
		t.Errorf("address file: %q, %v; want %s", addr, err, c.Addr)
	}
	if ping, err := c.Anon(t).Ping(ctx); err != nil || ping.ClusterName != authtest.ClusterName || ping.SecondFactor != "off" {
		t.Fatalf("ping: %+v, %v", ping, err)
	}

	if tok := c.AddUser(t, "bob", "", []string{"access"}, nil); tok == "" {
		t.Error("no sign-up token for a user without a password")
	}
	c.AddUser(t, "alice", "correct horse", []string{"access"}, map[string][]string{"db_users": {"alice"}})
	alice, resp, key := c.Login(t, "alice", "correct horse")
	cert, _ := ca.ParseCertPEM([]byte(resp.Cert))
	id, err := ca.IdentityFromCertificate(cert)
	if err != nil || id.Kind != ca.KindUser || id.Username != "alice" || !key.PublicKey.Equal(cert.PublicKey) {
		t.Fatalf("login certificate: %+v, %v", id, err)
	}
	if len(c.Audit.OfType(audit.TypeUserLogin)) != 1 {
		t.Error("the login was not recorded")
	}

	c.Advertise(t, "agent-1", authclient.Database{Name: "pg1", Protocol: "postgres"})
	if dbs, err := alice.ListDatabases(ctx); err != nil || len(dbs) != 1 {
		t.Fatalf("alice's databases: %+v, %v", dbs, err)
	}
	// The clock drives the service and its store: heartbeats renew the
	// databases, without them they lapse.
	c.Clock.Advance(9 * time.Minute)
	c.HeartbeatAgents(t)
	c.Clock.Advance(9 * time.Minute)
	if dbs, err := alice.ListDatabases(ctx); err != nil || len(dbs) != 1 {
		t.Fatalf("alice's databases after a renewed heartbeat: %+v, %v", dbs, err)
	}
	c.Clock.Advance(2 * time.Minute)
	if dbs, err := alice.ListDatabases(ctx); err != nil || len(dbs) != 0 {
		t.Fatalf("databases after the heartbeat lapsed: %+v, %v", dbs, err)
	}

	_, joined, _ := c.Join(t, "proxy", ca.SystemRoleProxy, "")
	hcert, _ := ca.ParseCertPEM([]byte(joined.Cert))
	if hid, err := ca.IdentityFromCertificate(hcert); err != nil || hid.Kind != ca.KindHost || hid.Roles[0] != ca.SystemRoleProxy ||
		joined.HostID == "" || joined.SSHCert == "" || hcert.VerifyHostname("127.0.0.1") != nil {
		t.Fatalf("proxy host certificate: %+v, %v", hid, err)
	}
}

func TestFakeProxyForwards(t *testing.T) {
	c := authtest.Start(t)
	c.AddUser(t, "alice", "correct horse", []string{"access"}, nil)
	c.Advertise(t, "agent-1", authclient.Database{Name: "pg1", Protocol: "postgres", URI: "db.internal:5432"})
	addr := c.StartFakeProxy(t, &authclient.ProxySettings{PostgresAddr: "127.0.0.1:5432"})

	_, resp, key := c.Login(t, "alice", "correct horse")
	viaProxy, err := authclient.New(addr, authclient.WithTLSConfig(authclient.TLSConfig(authtest.TLSCertificate(t, resp.Cert, key), c.HostCAs())))
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	ctx := context.Background()
	if ping, err := viaProxy.Ping(ctx); err != nil || ping.Proxy == nil || ping.Proxy.PostgresAddr != "127.0.0.1:5432" {
		t.Fatalf("ping through the fake proxy: %+v, %v", ping, err)
	}
	if dbs, err := viaProxy.ListDatabases(ctx); err != nil || len(dbs) != 1 || dbs[0].URI != "" {
		t.Fatalf("alice's databases through the fake proxy: %+v, %v", dbs, err)
	}
}

func TestAuditLogServesSearches(t *testing.T) {
	c := authtest.Start(t, authtest.WithAuditLog())
	if _, err := c.Admin().CreateToken(context.Background(), authclient.CreateTokenRequest{Type: "db"}); err != nil {
		t.Fatal(err)
	}
	evs, err := c.Admin().SearchAuditEvents(context.Background(), authclient.AuditQuery{Types: []string{audit.TypeJoinTokenCreate}})
	if err != nil || len(evs) != 1 || len(c.Audit.OfType(audit.TypeJoinTokenCreate)) != 1 {
		t.Fatalf("search: %d events, %v; recorded %d", len(evs), err, len(c.Audit.OfType(audit.TypeJoinTokenCreate)))
	}
	if _, err := authtest.Start(t).Admin().SearchAuditEvents(context.Background(), authclient.AuditQuery{}); !authclient.IsUnavailable(err) {
		t.Errorf("search without WithAuditLog: %v", err)
	}
}
