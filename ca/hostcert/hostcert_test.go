package hostcert_test

import (
	"context"
	"crypto"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/hostcert"
	"github.com/portcullis-db/portcullis/ca/storage/boltstore"
)

func startAuth(t *testing.T) (*auth.Server, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, "state.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := auth.New(context.Background(), auth.Config{Storage: st, ClusterName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return srv, l.Addr().String()
}

func TestObtainSaveLoad(t *testing.T) {
	srv, _ := startAuth(t)
	creds, err := hostcert.Obtain(context.Background(), srv.IssueHostCredentials, hostcert.Request{Role: ca.SystemRoleDatabase, HostID: "agent-1"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "db")
	if _, err := hostcert.Load(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of an empty dir: %v", err)
	}
	if err := creds.Save(dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"key.pem": 0o600, "identity.json": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, want)
		}
	}
	got, err := hostcert.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.HostID != "agent-1" || got.Role != ca.SystemRoleDatabase || got.ClusterName != "test" ||
		!got.Cert.Equal(creds.Cert) || got.SSHCert == nil || len(got.SSHHostCAs) != 1 || len(got.DBCAs) != 1 || len(got.UserCAs) != 1 {
		t.Fatalf("loaded %+v", got)
	}
	if _, err := got.SSHSigner(); err != nil {
		t.Fatal(err)
	}
	id, err := ca.IdentityFromCertificate(got.Cert)
	if err != nil || id.Kind != ca.KindHost || id.Username != "agent-1" {
		t.Fatalf("identity %+v, %v", id, err)
	}
}

func TestJoinWithTokenAndPin(t *testing.T) {
	srv, addr := startAuth(t)
	ctx := context.Background()
	idPath := filepath.Join(t.TempDir(), "admin.pem")
	if err := srv.WriteAdminIdentity(idPath, auth.AdminIdentityTTL); err != nil {
		t.Fatal(err)
	}
	f, err := authclient.ReadIdentityFile(idPath)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := authclient.New(addr, authclient.WithTLSConfig(f.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	tok, err := admin.CreateToken(ctx, authclient.CreateTokenRequest{Type: "proxy"})
	if err != nil {
		t.Fatal(err)
	}
	pin := srv.Authority(ca.HostCA).Fingerprint()
	if _, err := hostcert.Join(ctx, addr, tok.Secret, "sha256:0000", hostcert.Request{Role: ca.SystemRoleProxy}); err == nil {
		t.Fatal("joined a cluster whose CA does not match the pin")
	}
	creds, err := hostcert.Join(ctx, addr, tok.Secret, pin, hostcert.Request{Role: ca.SystemRoleProxy, DNSNames: []string{"proxy.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if creds.HostID == "" || creds.SSHCert == nil || creds.Role != ca.SystemRoleProxy {
		t.Fatalf("credentials %+v", creds)
	}
	// The credentials call the API.
	c, err := authclient.New(addr, authclient.WithTLSConfig(creds.AuthTLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.ProxyHeartbeat(ctx, authclient.ProxyHeartbeatRequest{Addr: "proxy.example:3080"}); err != nil {
		t.Fatal(err)
	}
	if _, err := hostcert.Join(ctx, addr, "wrong", "", hostcert.Request{Role: ca.SystemRoleProxy}); err == nil {
		t.Fatal("joined with a wrong token")
	}
}

func TestManagerRenews(t *testing.T) {
	srv, addr := startAuth(t)
	ctx := context.Background()
	creds, err := hostcert.Obtain(ctx, srv.IssueHostCredentials, hostcert.Request{Role: ca.SystemRoleDatabase, HostID: "agent-1"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := hostcert.NewManager(creds)
	m.Dir = dir
	m.Renew = func(ctx context.Context, cur *hostcert.Credentials, req authclient.RenewRequest) (*authclient.JoinResponse, error) {
		c, err := authclient.New(addr, authclient.WithTLSConfig(cur.AuthTLSConfig()))
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.RenewHost(ctx, req)
	}
	if err := m.RenewNow(ctx); err != nil {
		t.Fatal(err)
	}
	next := m.Current()
	if next.Cert.Equal(creds.Cert) || next.HostID != "agent-1" || next.SSHCert == nil {
		t.Fatalf("renewal kept the certificate or lost the identity: %+v", next)
	}
	if next.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(creds.Key.Public()) {
		t.Error("renewal kept the old key")
	}
	saved, err := hostcert.Load(dir)
	if err != nil || !saved.Cert.Equal(next.Cert) {
		t.Fatalf("saved credentials: %v", err)
	}
}
