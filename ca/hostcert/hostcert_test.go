package hostcert_test

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/hostcert"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

func TestObtainSaveLoad(t *testing.T) {
	cluster := authtest.Start(t)
	creds, err := hostcert.Obtain(context.Background(), cluster.Server.IssueHostCredentials, hostcert.Request{Role: ca.SystemRoleDatabase, HostID: "agent-1"})
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
	cluster := authtest.Start(t)
	ctx := context.Background()
	tok, err := cluster.Admin().CreateToken(ctx, authclient.CreateTokenRequest{Type: "proxy"})
	if err != nil {
		t.Fatal(err)
	}
	pin := cluster.HostPin()
	if _, err := hostcert.Join(ctx, cluster.Addr, tok.Secret, "sha256:0000", hostcert.Request{Role: ca.SystemRoleProxy}); err == nil {
		t.Fatal("joined a cluster whose CA does not match the pin")
	}
	creds, err := hostcert.Join(ctx, cluster.Addr, tok.Secret, pin, hostcert.Request{Role: ca.SystemRoleProxy, DNSNames: []string{"proxy.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if creds.HostID == "" || creds.SSHCert == nil || creds.Role != ca.SystemRoleProxy {
		t.Fatalf("credentials %+v", creds)
	}
	// The credentials call the API.
	c, err := authclient.New(cluster.Addr, authclient.WithTLSConfig(creds.AuthTLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.ProxyHeartbeat(ctx, authclient.ProxyHeartbeatRequest{Addr: "proxy.example:3080"}); err != nil {
		t.Fatal(err)
	}
	if _, err := hostcert.Join(ctx, cluster.Addr, "wrong", "", hostcert.Request{Role: ca.SystemRoleProxy}); err == nil {
		t.Fatal("joined with a wrong token")
	}
}

func TestManagerRenews(t *testing.T) {
	cluster := authtest.Start(t)
	ctx := context.Background()
	creds, err := hostcert.Obtain(ctx, cluster.Server.IssueHostCredentials, hostcert.Request{Role: ca.SystemRoleDatabase, HostID: "agent-1"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := hostcert.NewManager(creds)
	m.Dir = dir
	m.Renew = func(ctx context.Context, cur *hostcert.Credentials, req authclient.RenewRequest) (*authclient.JoinResponse, error) {
		c, err := authclient.New(cluster.Addr, authclient.WithTLSConfig(cur.AuthTLSConfig()))
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
