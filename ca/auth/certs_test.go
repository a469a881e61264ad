package auth_test

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/storage/boltstore"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

func TestJoinHeartbeatAndInventoryExpiry(t *testing.T) {
	tc := authtest.Start(t)
	ctx := context.Background()
	agent, resp, _ := tc.Join(t, "db", ca.SystemRoleDatabase, "agent-1")

	cert, err := ca.ParseCertPEM([]byte(resp.Cert))
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.IdentityFromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	if id.Kind != ca.KindHost || id.Username != "agent-1" || id.Roles[0] != ca.SystemRoleDatabase {
		t.Fatalf("host identity = %+v", id)
	}
	// The SSH certificate is an agent certificate from the host CA.
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(resp.SSHCert))
	if err != nil {
		t.Fatal(err)
	}
	sc := pk.(*ssh.Certificate)
	caKey, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(resp.SSHHostCA[0]))
	if sc.CertType != ssh.UserCert || sc.ValidPrincipals[0] != "agent-1" || string(sc.SignatureKey.Marshal()) != string(caKey.Marshal()) {
		t.Errorf("SSH certificate: type %d principals %v", sc.CertType, sc.ValidPrincipals)
	}
	if len(tc.Audit.OfType(audit.TypeAgentJoin)) != 1 {
		t.Error("no agent.join event")
	}

	err = agent.Heartbeat(ctx, authclient.HeartbeatRequest{TTL: time.Minute, Databases: []authclient.Database{
		{Name: "pg1", Protocol: "postgres", URI: "db.internal:5432", Labels: map[string]string{"env": "dev"}},
		{Name: "my1", Protocol: "mysql", URI: "db.internal:3306"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	dbs, err := tc.Admin().ListDatabases(ctx)
	if err != nil || len(dbs) != 2 {
		t.Fatalf("inventory = %v, %v", dbs, err)
	}
	if dbs[0].Name != "my1" || dbs[1].HostID != "agent-1" || dbs[1].URI == "" {
		t.Errorf("inventory = %+v", dbs)
	}
	// Users see what their roles allow, without internal addresses.
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, nil)
	alice, _, _ := tc.Login(t, "alice", "correct horse")
	dbs, err = alice.ListDatabases(ctx)
	if err != nil || len(dbs) != 2 || dbs[0].URI != "" {
		t.Fatalf("alice's inventory = %+v, %v", dbs, err)
	}
	// An agent that stops heartbeating leaves the inventory.
	tc.Clock.Advance(61 * time.Second)
	if dbs, err = tc.Admin().ListDatabases(ctx); err != nil || len(dbs) != 0 {
		t.Fatalf("inventory after the TTL = %v, %v", dbs, err)
	}
	// Users may not heartbeat.
	if err := alice.Heartbeat(ctx, authclient.HeartbeatRequest{}); !authclient.IsAccessDenied(err) {
		t.Fatalf("user heartbeat: %v", err)
	}
}

func TestJoinRefusals(t *testing.T) {
	tc := authtest.Start(t)
	ctx := context.Background()
	pub, _ := authtest.KeyPair(t)
	if _, err := tc.Anon(t).Join(ctx, authclient.JoinRequest{Token: "not-a-token", Role: ca.SystemRoleDatabase, PublicKey: pub}); !authclient.IsUnauthenticated(err) {
		t.Fatalf("bad token: %v", err)
	}
	tok, err := tc.Admin().CreateToken(ctx, authclient.CreateTokenRequest{Type: "db", OneTime: true, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Anon(t).Join(ctx, authclient.JoinRequest{Token: tok.Secret, Role: ca.SystemRoleProxy, PublicKey: pub}); !authclient.IsAccessDenied(err) {
		t.Fatalf("db token used for a proxy: %v", err)
	}
	if _, err := tc.Anon(t).Join(ctx, authclient.JoinRequest{Token: tok.Secret, Role: ca.SystemRoleDatabase, PublicKey: pub}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Anon(t).Join(ctx, authclient.JoinRequest{Token: tok.Secret, Role: ca.SystemRoleDatabase, PublicKey: pub}); !authclient.IsUnauthenticated(err) {
		t.Fatalf("one-time token used twice: %v", err)
	}
	tok, _ = tc.Admin().CreateToken(ctx, authclient.CreateTokenRequest{Type: "db", TTL: time.Minute})
	tc.Clock.Advance(2 * time.Minute)
	if _, err := tc.Anon(t).Join(ctx, authclient.JoinRequest{Token: tok.Secret, Role: ca.SystemRoleDatabase, PublicKey: pub}); !authclient.IsUnauthenticated(err) {
		t.Fatalf("expired token: %v", err)
	}
	toks, err := tc.Admin().ListTokens(ctx)
	if err != nil || len(toks) != 0 {
		t.Fatalf("tokens = %v, %v", toks, err)
	}
}

func TestRouteAndSessionCertificates(t *testing.T) {
	tc := authtest.Start(t)
	ctx := context.Background()
	agent, _, _ := tc.Join(t, "db", ca.SystemRoleDatabase, "agent-1")
	if err := agent.Heartbeat(ctx, authclient.HeartbeatRequest{Databases: []authclient.Database{{Name: "pg1", Protocol: "postgres"}}}); err != nil {
		t.Fatal(err)
	}
	proxy, _, _ := tc.Join(t, "proxy", ca.SystemRoleProxy, "proxy-1")
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, map[string][]string{"db_users": {"alice"}, "db_names": {"app"}})
	alice, login, _ := tc.Login(t, "alice", "correct horse")

	pub, _ := authtest.KeyPair(t)
	if _, err := alice.SignRoute(ctx, authclient.RouteRequest{PublicKey: pub, ServiceName: "pg1", DBUser: "root", DBName: "app"}); !authclient.IsAccessDenied(err) {
		t.Fatalf("route as a db user the role does not allow: %v", err)
	}
	if _, err := alice.SignRoute(ctx, authclient.RouteRequest{PublicKey: pub, ServiceName: "nope", DBUser: "alice"}); !authclient.IsNotFound(err) {
		t.Fatalf("route to an unknown database: %v", err)
	}
	route, err := alice.SignRoute(ctx, authclient.RouteRequest{PublicKey: pub, ServiceName: "pg1", DBUser: "alice", DBName: "app", TTL: 100 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if route.Expires.After(login.Expires) {
		t.Errorf("route certificate expires %v, after the login certificate (%v)", route.Expires, login.Expires)
	}

	// Only proxies get session certificates, and only for a valid route cert.
	if _, err := alice.SignSession(ctx, authclient.SessionRequest{PublicKey: pub, UserCert: route.Cert}); !authclient.IsAccessDenied(err) {
		t.Fatalf("user asked for a session certificate: %v", err)
	}
	if _, err := proxy.SignSession(ctx, authclient.SessionRequest{PublicKey: pub, UserCert: login.Cert}); err == nil {
		t.Fatal("a session certificate for a certificate without a route")
	}
	sess, err := proxy.SignSession(ctx, authclient.SessionRequest{PublicKey: pub, UserCert: route.Cert})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := ca.ParseCertPEM([]byte(sess.Cert))
	v := &ca.Verifier{Roots: []*x509.Certificate{tc.Server.Authority(ca.HostCA).Cert}, Kinds: []ca.CertKind{ca.KindSession}, Clock: tc.Clock.Now}
	id, err := v.Verify([]*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	if id.Username != "alice" || id.Route == nil || id.Route.ServiceName != "pg1" || id.Route.DBUser != "alice" || id.Route.DBName != "app" {
		t.Errorf("session identity = %+v %+v", id, id.Route)
	}
	if ttl := cert.NotAfter.Sub(tc.Clock.Now()); ttl > 10*time.Minute {
		t.Errorf("session certificate lives %v", ttl)
	}
	// A route certificate cannot be used to call the API.
	routeKeyPub, routeKey := authtest.KeyPair(t)
	route2, err := alice.SignRoute(ctx, authclient.RouteRequest{PublicKey: routeKeyPub, ServiceName: "pg1", DBUser: "alice", DBName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.CertClient(t, route2.Cert, routeKey).ListDatabases(ctx); !authclient.IsAccessDenied(err) {
		t.Fatalf("route certificate called the API: %v", err)
	}
}

func TestDatabaseCertificates(t *testing.T) {
	tc := authtest.Start(t)
	ctx := context.Background()
	pub, _ := authtest.KeyPair(t)
	srv, err := tc.Admin().SignDatabaseCert(ctx, authclient.DatabaseCertRequest{PublicKey: pub, Hosts: []string{"db.example", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := ca.ParseCertPEM([]byte(srv.Cert))
	if cert.Subject.CommonName != "db.example" || len(cert.IPAddresses) != 1 || len(srv.DBCAs) != 1 {
		t.Errorf("server cert CN=%q IPs=%v CAs=%d", cert.Subject.CommonName, cert.IPAddresses, len(srv.DBCAs))
	}
	agent, _, _ := tc.Join(t, "db", ca.SystemRoleDatabase, "agent-1")
	cl, err := agent.SignDatabaseCert(ctx, authclient.DatabaseCertRequest{PublicKey: pub, DBUser: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = ca.ParseCertPEM([]byte(cl.Cert))
	if cert.Subject.String() != "CN=alice" {
		t.Errorf("client cert subject %q", cert.Subject)
	}
	// Agents may not make server certificates; users may make neither.
	if _, err := agent.SignDatabaseCert(ctx, authclient.DatabaseCertRequest{PublicKey: pub, Hosts: []string{"x"}}); !authclient.IsAccessDenied(err) {
		t.Fatalf("agent server cert: %v", err)
	}
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, nil)
	alice, _, _ := tc.Login(t, "alice", "correct horse")
	if _, err := alice.SignDatabaseCert(ctx, authclient.DatabaseCertRequest{PublicKey: pub, DBUser: "postgres"}); !authclient.IsAccessDenied(err) {
		t.Fatalf("user client cert: %v", err)
	}
}

func TestRolesGovernAdministration(t *testing.T) {
	tc := authtest.Start(t)
	ctx := context.Background()
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, nil)
	tc.AddUser(t, "erin", "correct horse", []string{"editor"}, nil)
	alice, _, _ := tc.Login(t, "alice", "correct horse")
	erin, _, _ := tc.Login(t, "erin", "correct horse")

	if _, err := alice.ListUsers(ctx); !authclient.IsAccessDenied(err) {
		t.Fatalf("access role listed users: %v", err)
	}
	if len(tc.Audit.OfType(audit.TypeAccessDenied)) != 1 {
		t.Error("no access.denied event")
	}
	users, err := erin.ListUsers(ctx)
	if err != nil || len(users) != 2 {
		t.Fatalf("editor lists users: %v, %v", users, err)
	}
	if _, err := erin.CreateUser(ctx, authclient.CreateUserRequest{User: authclient.User{Name: "bob", Roles: []string{"nosuchrole"}}}); err == nil {
		t.Fatal("a user with a missing role was created")
	}
	if err := erin.DeleteRole(ctx, "access"); err == nil {
		t.Fatal("a role held by a user was deleted")
	}
	// A user reads their own record without any rule.
	if u, err := alice.GetUser(ctx, "alice"); err != nil || u.Name != "alice" {
		t.Fatalf("own record: %v, %v", u, err)
	}
	st, err := erin.Status(ctx)
	if err != nil || len(st.CAs) != 3 || st.Users != 2 {
		t.Fatalf("status = %+v, %v", st, err)
	}
}

func TestStatePersistsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	open := func() (*auth.Server, func()) {
		st, err := boltstore.Open(filepath.Join(dir, "state.db"), boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := auth.New(context.Background(), auth.Config{Storage: st, ClusterName: "prod"})
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		return srv, func() { st.Close() }
	}
	srv, closeFn := open()
	pins := map[ca.AuthorityType]string{}
	for _, typ := range []ca.AuthorityType{ca.UserCA, ca.HostCA, ca.DatabaseCA} {
		pins[typ] = srv.Authority(typ).Fingerprint()
	}
	closeFn()
	srv, closeFn = open()
	defer closeFn()
	for typ, pin := range pins {
		if got := srv.Authority(typ).Fingerprint(); got != pin {
			t.Errorf("%s CA changed across a restart: %s -> %s", typ, pin, got)
		}
	}
	if srv.ClusterName() != "prod" {
		t.Errorf("cluster name %q", srv.ClusterName())
	}
}

func TestClusterNameCannotChange(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := auth.New(context.Background(), auth.Config{Storage: st, ClusterName: "one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.New(context.Background(), auth.Config{Storage: st, ClusterName: "two"}); err == nil {
		t.Fatal("the cluster was renamed")
	}
}
