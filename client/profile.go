package client

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
)

const (
	profileFile = "profile.json"
	keysDir     = "keys"
	hostCAsFile = "host-cas.pem"
	userCAsFile = "user-cas.pem"
	dirPerm     = 0o700
	filePerm    = 0o600
	maxFileSize = 4 << 20
)

// Profile is the current login, as stored in profile.json.
type Profile struct {
	// Home is the profile directory the profile was loaded from or saved
	// to.
	Home string `json:"-"`
	// ProxyAddr is the host:port of the proxy logged in to.
	ProxyAddr string `json:"proxy_addr"`
	// Username, Roles and Traits are the identity the certificate carries.
	Username string              `json:"user"`
	Roles    []string            `json:"roles"`
	Traits   map[string][]string `json:"traits,omitempty"`
	// Cluster is the cluster's name.
	Cluster string `json:"cluster"`
	// Expires is when the user certificate expires.
	Expires time.Time `json:"expires"`
	// CAPin is the host CA pin the first login used, if any.
	CAPin string `json:"ca_pin,omitempty"`
	// Proxy caches where the proxy serves database protocols, as its ping
	// said (see [Profile.ProxySettings]); nil until first asked.
	Proxy *authclient.ProxySettings `json:"proxy_settings,omitempty"`

	// Clock is the time source for expiry checks; nil means time.Now.
	Clock func() time.Time `json:"-"`
}

// now is the profile's current time.
func (p *Profile) now() time.Time {
	if p.Clock != nil {
		return p.Clock()
	}
	return time.Now()
}

// LoadProfile reads the current profile from home ("" means
// [DefaultHome]). Without one it returns a [*NotLoggedInError].
func LoadProfile(home string) (*Profile, error) {
	if home == "" {
		h, err := DefaultHome()
		if err != nil {
			return nil, err
		}
		home = h
	}
	data, err := readFile(filepath.Join(home, profileFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &NotLoggedInError{Home: home}
	}
	if err != nil {
		return nil, err
	}
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("the profile %s is damaged (%v); log in again", filepath.Join(home, profileFile), err)
	}
	if p.ProxyAddr == "" || policy.ValidateName("user", p.Username) != nil {
		return nil, fmt.Errorf("the profile %s is damaged (no proxy or user); log in again", filepath.Join(home, profileFile))
	}
	p.Home = home
	return &p, nil
}

// Dir is the directory of this profile's proxy: keys/<proxy>.
func (p *Profile) Dir() string { return proxyDir(p.Home, p.ProxyAddr) }

// KeyPath is the user's private key file.
func (p *Profile) KeyPath() string { return filepath.Join(p.Dir(), p.Username+".key") }

// CertPath is the user certificate file.
func (p *Profile) CertPath() string { return filepath.Join(p.Dir(), p.Username+".crt") }

// HostCAsPath is the file of host CAs that verify the proxy.
func (p *Profile) HostCAsPath() string { return filepath.Join(p.Dir(), hostCAsFile) }

// UserCAsPath is the file of user CAs.
func (p *Profile) UserCAsPath() string { return filepath.Join(p.Dir(), userCAsFile) }

// routeDir holds the user's route certificates, one per database.
func (p *Profile) routeDir() string { return filepath.Join(p.Dir(), "db", p.Username) }

// Expired reports whether the user certificate has expired at now.
func (p *Profile) Expired(now time.Time) bool { return !now.Before(p.Expires) }

// Certificate reads and parses the stored user certificate.
func (p *Profile) Certificate() (*x509.Certificate, error) {
	data, err := readFile(p.CertPath())
	if err != nil {
		return nil, p.missing(err)
	}
	cert, err := ca.ParseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("the certificate %s is damaged; log in again", p.CertPath())
	}
	return cert, nil
}

// TLSCertificate loads the user's key and certificate, for presenting to
// the proxy.
func (p *Profile) TLSCertificate() (*tls.Certificate, error) {
	cert, err := p.Certificate()
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile(p.KeyPath())
	if err != nil {
		return nil, p.missing(err)
	}
	key, err := ca.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the private key %s is damaged; log in again", p.KeyPath())
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("the private key %s does not belong to the certificate %s; log in again", p.KeyPath(), p.CertPath())
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// HostCAs reads the stored host CAs.
func (p *Profile) HostCAs() ([]*x509.Certificate, error) {
	certs, err := readHostCAs(p.Home, p.ProxyAddr)
	if err != nil {
		return nil, p.missing(err)
	}
	return certs, nil
}

// AuthClient returns a client of the cluster's API through the proxy,
// presenting the user certificate and verifying the proxy with the stored
// host CAs. opts are added after the TLS configuration (for example
// [authclient.WithTimeout]). The caller closes the client.
func (p *Profile) AuthClient(ctx context.Context, opts ...authclient.Option) (*authclient.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cert, err := p.TLSCertificate()
	if err != nil {
		return nil, err
	}
	hostCAs, err := p.HostCAs()
	if err != nil {
		return nil, err
	}
	all := append([]authclient.Option{authclient.WithTLSConfig(authclient.TLSConfig(cert, hostCAs))}, opts...)
	return authclient.New(p.ProxyAddr, all...)
}

// Logout removes the user's key, certificate and route certificates, and
// profile.json if it still names this login. The proxy's CAs stay, so that
// the next login verifies the proxy without a pin.
func (p *Profile) Logout() error {
	var errs []error
	for _, path := range []string{p.KeyPath(), p.CertPath()} {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(p.routeDir()); err != nil {
		errs = append(errs, err)
	}
	cur, err := LoadProfile(p.Home)
	switch {
	case IsNotLoggedIn(err):
	case err != nil:
		// A damaged profile.json is removed too.
		if err := os.Remove(filepath.Join(p.Home, profileFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	case cur.ProxyAddr == p.ProxyAddr && cur.Username == p.Username:
		if err := os.Remove(filepath.Join(p.Home, profileFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("logging out left files behind: %w", errors.Join(errs...))
	}
	return nil
}

// save writes profile.json.
func (p *Profile) save() error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.Home, dirPerm); err != nil {
		return fmt.Errorf("creating the profile directory: %w", err)
	}
	return ca.WriteFileAtomic(filepath.Join(p.Home, profileFile), append(data, '\n'), filePerm)
}

func (p *Profile) missing(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the login of %s at %s is incomplete (%v); log in again", p.Username, p.ProxyAddr, err)
	}
	return err
}

// proxyDir is keys/<proxy> under home.
func proxyDir(home, proxyAddr string) string {
	return filepath.Join(home, keysDir, sanitizeAddr(proxyAddr))
}

// sanitizeAddr makes a host:port safe as one path element: lowercase, and
// every byte other than [a-z0-9.-] replaced by "_". The port's separator
// always becomes "_", so the result is never "." or "..".
func sanitizeAddr(addr string) string {
	addr = strings.ToLower(addr)
	b := []byte(addr)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// checkProxyAddr refuses an address that is not host:port.
func checkProxyAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("the proxy address %q is not host:port; pass e.g. --proxy proxy.example.com:3080", addr)
	}
	return nil
}

func readHostCAs(home, proxyAddr string) ([]*x509.Certificate, error) {
	path := filepath.Join(proxyDir(home, proxyAddr), hostCAsFile)
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := ca.ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("the host CA file %s is damaged; remove it and log in with --ca-pin", path)
	}
	return certs, nil
}

// readFile reads a profile file, refusing absurd sizes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes; it is not a profile file", path, maxFileSize)
	}
	return data, nil
}

func publicKeysEqual(a, b any) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}
