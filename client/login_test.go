package client_test

import (
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

const alicePassword = "correct horse battery"

// addUser creates a user with roles, db user name and db name app, and a
// password, or pending sign-up when password is empty (then it returns
// the sign-up token).
func addUser(t *testing.T, c *authtest.Cluster, name, password string, roles ...string) string {
	t.Helper()
	return c.AddUser(t, name, password, roles, map[string][]string{"db_users": {name}, "db_names": {"app"}})
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestLoginWithPinStoresProfile(t *testing.T) {
	c := authtest.Start(t)
	addUser(t, c, "alice", alicePassword, "access")
	home := filepath.Join(t.TempDir(), "home")
	ctx := context.Background()

	// The pin is taken in upper case too, as people copy it.
	p, err := client.Login(ctx, client.LoginRequest{
		ProxyAddr: c.Addr, Username: "alice", Password: alicePassword, CAPin: "sha256:" + strings.ToUpper(strings.TrimPrefix(c.HostPin(), "sha256:")),
	}, client.WithHome(home))
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if p.Username != "alice" || p.Cluster != "test" || !slices.Equal(p.Roles, []string{"access"}) ||
		!slices.Equal(p.Traits["db_users"], []string{"alice"}) || p.CAPin != c.HostPin() || p.ProxyAddr != c.Addr {
		t.Errorf("profile = %+v", p)
	}
	if p.Expired(time.Now()) || !p.Expired(p.Expires) {
		t.Errorf("Expired is wrong around %v", p.Expires)
	}

	for path, want := range map[string]os.FileMode{
		home:                                0o700,
		filepath.Join(home, "keys"):         0o700,
		p.Dir():                             0o700,
		p.KeyPath():                         0o600,
		p.CertPath():                        0o600,
		p.HostCAsPath():                     0o600,
		p.UserCAsPath():                     0o600,
		filepath.Join(home, "profile.json"): 0o600,
	} {
		if got := mode(t, path); got != want {
			t.Errorf("%s has mode %v, want %v", path, got, want)
		}
	}
	if want := filepath.Join(home, "keys", strings.ReplaceAll(c.Addr, ":", "_"), "alice.key"); p.KeyPath() != want {
		t.Errorf("key path %s, want %s", p.KeyPath(), want)
	}
	keyPEM, err := os.ReadFile(p.KeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(keyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("the key is not PKCS#8 PEM")
	}

	loaded, err := client.LoadProfile(home)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Username != "alice" || !loaded.Expires.Equal(p.Expires) || loaded.Home != home {
		t.Errorf("LoadProfile = %+v, want %+v", loaded, p)
	}
	tc, err := loaded.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.IdentityFromCertificate(tc.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if id.Username != "alice" || id.Kind != ca.KindUser || tc.Leaf.Subject.CommonName != "alice" {
		t.Errorf("certificate identity = %+v", id)
	}

	// The profile's client presents the certificate and verifies the proxy
	// with the stored host CAs.
	ac, err := loaded.AuthClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	u, err := ac.GetUser(ctx, "alice")
	if err != nil {
		t.Fatalf("GetUser with the profile's certificate: %v", err)
	}
	if u.Name != "alice" {
		t.Errorf("GetUser = %+v", u)
	}

	if err := loaded.Logout(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p.KeyPath(), p.CertPath(), filepath.Join(home, "profile.json")} {
		if exists(path) {
			t.Errorf("%s is still there after logout", path)
		}
	}
	if !exists(p.HostCAsPath()) {
		t.Errorf("logout removed the proxy's host CAs")
	}
	if _, err := client.LoadProfile(home); !client.IsNotLoggedIn(err) {
		t.Errorf("LoadProfile after logout: %v, want not logged in", err)
	}
}

func TestLoginAgainUsesStoredCAsAndAFreshKey(t *testing.T) {
	c := authtest.Start(t)
	addUser(t, c, "alice", alicePassword, "access")
	home := t.TempDir()
	ctx := context.Background()
	req := client.LoginRequest{ProxyAddr: c.Addr, Username: "alice", Password: alicePassword, CAPin: c.HostPin()}
	p1, err := client.Login(ctx, req, client.WithHome(home))
	if err != nil {
		t.Fatal(err)
	}
	key1, _ := os.ReadFile(p1.KeyPath())

	req.CAPin = ""
	p2, err := client.Login(ctx, req, client.WithHome(home))
	if err != nil {
		t.Fatalf("second login without a pin: %v", err)
	}
	key2, _ := os.ReadFile(p2.KeyPath())
	if string(key1) == string(key2) {
		t.Errorf("the second login reused the private key")
	}
	if p2.CAPin != c.HostPin() {
		t.Errorf("the pin was not remembered: %q", p2.CAPin)
	}

	// With the host CAs gone, the remembered pin still verifies the proxy.
	if err := os.Remove(p2.HostCAsPath()); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Login(ctx, req, client.WithHome(home)); err != nil {
		t.Fatalf("login with the remembered pin: %v", err)
	}
}

func TestLoginNeedsAPinOrInsecureTheFirstTime(t *testing.T) {
	c := authtest.Start(t)
	addUser(t, c, "alice", alicePassword, "access")
	home := t.TempDir()
	_, err := client.Login(context.Background(), client.LoginRequest{
		ProxyAddr: c.Addr, Username: "alice", Password: alicePassword,
	}, client.WithHome(home))
	if err == nil || !strings.Contains(err.Error(), "--ca-pin") {
		t.Fatalf("Login without pin: %v, want an error naming --ca-pin", err)
	}

	p, err := client.Login(context.Background(), client.LoginRequest{
		ProxyAddr: c.Addr, Username: "alice", Password: alicePassword, Insecure: true,
	}, client.WithHome(home))
	if err != nil {
		t.Fatalf("insecure login: %v", err)
	}
	if !exists(p.HostCAsPath()) || p.CAPin != "" {
		t.Errorf("insecure login: host CAs stored %v, pin %q", exists(p.HostCAsPath()), p.CAPin)
	}
}

func TestLoginRefusesWrongPin(t *testing.T) {
	c := authtest.Start(t)
	addUser(t, c, "alice", alicePassword, "access")
	other, err := ca.NewAuthority(ca.HostCA, "other", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	_, err = client.Login(context.Background(), client.LoginRequest{
		ProxyAddr: c.Addr, Username: "alice", Password: alicePassword, CAPin: other.Fingerprint(),
	}, client.WithHome(home))
	if !client.IsUntrustedProxy(err) {
		t.Fatalf("Login with a wrong pin: %v, want an untrusted proxy error", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "does not match the pin "+other.Fingerprint()) || strings.Contains(msg, "https://") {
		t.Errorf("error %q is not one clear sentence about the pin", msg)
	}
	if exists(filepath.Join(home, "profile.json")) || exists(filepath.Join(home, "keys")) {
		t.Errorf("a refused login left files in %s", home)
	}

	_, err = client.Login(context.Background(), client.LoginRequest{
		ProxyAddr: c.Addr, Username: "alice", Password: alicePassword, CAPin: "sha256:nothex",
	}, client.WithHome(home))
	if err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("Login with a malformed pin: %v", err)
	}
}

func TestLoginRefusesChangedStoredCA(t *testing.T) {
	c := authtest.Start(t)
	addUser(t, c, "alice", alicePassword, "access")
	home := t.TempDir()
	ctx := context.Background()
	req := client.LoginRequest{ProxyAddr: c.Addr, Username: "alice", Password: alicePassword, CAPin: c.HostPin()}
	p, err := client.Login(ctx, req, client.WithHome(home))
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.NewAuthority(ca.HostCA, "other", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.HostCAsPath(), other.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	req.CAPin = ""
	_, err = client.Login(ctx, req, client.WithHome(home))
	if !client.IsUntrustedProxy(err) || !strings.Contains(err.Error(), "--ca-pin") {
		t.Fatalf("Login against a changed CA: %v", err)
	}
	var ue *client.UntrustedProxyError
	if !errorsAs(err, &ue) || ue.Pinned {
		t.Errorf("error %#v should say the stored CAs failed", err)
	}
}

func TestLoginWrongPasswordIsGeneric(t *testing.T) {
	c := authtest.Start(t)
	addUser(t, c, "alice", alicePassword, "access")
	home := t.TempDir()
	for _, req := range []client.LoginRequest{
		{ProxyAddr: c.Addr, Username: "alice", Password: "wrong password", CAPin: c.HostPin()},
		{ProxyAddr: c.Addr, Username: "nobody", Password: alicePassword, CAPin: c.HostPin()},
	} {
		_, err := client.Login(context.Background(), req, client.WithHome(home))
		if !authclient.IsUnauthenticated(err) || err.Error() != "invalid username, password or one-time code" {
			t.Errorf("Login(%s): %v, want the generic refusal", req.Username, err)
		}
	}
	if exists(filepath.Join(home, "profile.json")) {
		t.Errorf("a refused login wrote a profile")
	}
}

func TestLoginChecksArguments(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		req  client.LoginRequest
		want string
	}{
		{client.LoginRequest{ProxyAddr: "proxy", Username: "a", Password: "p"}, "not host:port"},
		{client.LoginRequest{ProxyAddr: "proxy:3080", Password: "p"}, "--user"},
		{client.LoginRequest{ProxyAddr: "proxy:3080", Username: "a"}, "password"},
		{client.LoginRequest{ProxyAddr: "proxy:3080", Username: "a", Password: "p", CAPin: "sha256:" + strings.Repeat("0", 64), Insecure: true}, "not both"},
	} {
		_, err := client.Login(context.Background(), tc.req, client.WithHome(home))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Login(%+v): %v, want %q", tc.req, err, tc.want)
		}
	}
}

func TestLoadProfileWithoutLogin(t *testing.T) {
	_, err := client.LoadProfile(t.TempDir())
	if !client.IsNotLoggedIn(err) || !strings.Contains(err.Error(), "pcl login") {
		t.Errorf("LoadProfile: %v", err)
	}
}

func TestStoredCertificateVerifiesAgainstUserCAs(t *testing.T) {
	// The stored certificate is an X.509 user certificate that the stored
	// user CA verifies, as psql and the proxy will check it.
	c := authtest.Start(t)
	addUser(t, c, "alice", alicePassword, "access")
	home := t.TempDir()
	p, err := client.Login(context.Background(), client.LoginRequest{
		ProxyAddr: c.Addr, Username: "alice", Password: alicePassword, CAPin: c.HostPin(),
	}, client.WithHome(home))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := os.ReadFile(p.CertPath())
	casPEM, _ := os.ReadFile(p.UserCAsPath())
	cert, err := ca.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	cas, err := ca.ParseCertsPEM(casPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the stored certificate does not verify against the stored user CAs: %v", err)
	}
}

func TestLoginUnreachableProxy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = client.Login(context.Background(), client.LoginRequest{
		ProxyAddr: addr, Username: "alice", Password: alicePassword, CAPin: "sha256:" + strings.Repeat("0", 64),
	}, client.WithHome(t.TempDir()))
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the proxy at "+addr+" (") || strings.Contains(err.Error(), "https://") {
		t.Errorf("Login to a closed port: %v", err)
	}
}
