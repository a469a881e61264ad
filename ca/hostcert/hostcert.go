// Package hostcert keeps the credentials of a cluster component, a proxy or
// a database agent: it obtains them (by joining with a token, or from an
// Auth service in the same process), stores them in a directory, and renews
// them at half-life.
//
// # Files
//
// A credentials directory (created 0700) holds:
//
//	identity.json     host ID, system role, cluster name
//	key.pem           the private key (0600); it never leaves this host
//	cert.pem          the X.509 host certificate
//	ssh-cert.pub      the SSH certificate for the reverse tunnel
//	host-cas.pem      host CAs: verify the Auth service, proxies and agents
//	user-cas.pem      user CAs: verify people's certificates
//	db-cas.pem        database CAs: verify self-hosted databases
//	ssh-host-cas.pub  the host CA as SSH keys
package hostcert

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
)

// Credentials are a component's key, certificates and trusted CAs.
type Credentials struct {
	HostID      string
	Role        string // ca.SystemRoleProxy or ca.SystemRoleDatabase
	ClusterName string
	Key         crypto.Signer
	Cert        *x509.Certificate
	SSHCert     *ssh.Certificate
	HostCAs     []*x509.Certificate
	UserCAs     []*x509.Certificate
	DBCAs       []*x509.Certificate
	SSHHostCAs  []ssh.PublicKey
}

// Issuer signs host certificates for a join request: a join through the
// API ([Join]) or an Auth service in the same process
// (auth.Server.IssueHostCredentials).
type Issuer func(ctx context.Context, req authclient.JoinRequest) (*authclient.JoinResponse, error)

// Request says what credentials to obtain.
type Request struct {
	Role        string
	HostID      string // empty: the Auth service picks one
	DNSNames    []string
	IPAddresses []string
}

// Obtain makes a new key and has issue sign certificates for it.
func Obtain(ctx context.Context, issue Issuer, r Request) (*Credentials, error) {
	key, err := ca.GenerateKey()
	if err != nil {
		return nil, err
	}
	pub, err := authclient.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	resp, err := issue(ctx, authclient.JoinRequest{
		Role:         r.Role,
		HostID:       r.HostID,
		PublicKey:    pub,
		SSHPublicKey: string(ssh.MarshalAuthorizedKey(sshPub)),
		DNSNames:     r.DNSNames,
		IPAddresses:  r.IPAddresses,
	})
	if err != nil {
		return nil, err
	}
	return fromResponse(resp, key, r.Role)
}

// Join obtains credentials from the Auth service, or a proxy forwarding
// its API, at addr with a join token. Without a pin the cluster's host CA
// is learnt through authclient.TrustForJoin, which the token vouches for;
// with caPin (sha256:...) the server must also chain to the pinned CA.
func Join(ctx context.Context, addr, token, caPin string, r Request, opts ...authclient.Option) (*Credentials, error) {
	if token == "" {
		return nil, errors.New("a join token is needed to join the cluster: make one with `pctl tokens add`")
	}
	cas, err := authclient.TrustForJoin(ctx, addr, token, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot establish trust with the cluster at %s: %w", addr, err)
	}
	if caPin != "" {
		pinned := false
		for _, c := range cas {
			pinned = pinned || ca.Fingerprint(c) == caPin
		}
		if !pinned {
			return nil, fmt.Errorf("the cluster at %s does not have the host CA pinned by ca_pin %s", addr, caPin)
		}
	}
	c, err := authclient.New(addr, append(append([]authclient.Option(nil), opts...), authclient.WithTLSConfig(authclient.TLSConfig(nil, cas)))...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return Obtain(ctx, func(ctx context.Context, req authclient.JoinRequest) (*authclient.JoinResponse, error) {
		req.Token = token
		return c.Join(ctx, req)
	}, r)
}

func fromResponse(resp *authclient.JoinResponse, key crypto.Signer, role string) (*Credentials, error) {
	c := &Credentials{HostID: resp.HostID, Role: role, ClusterName: resp.ClusterName, Key: key}
	var err error
	if c.Cert, err = ca.ParseCertPEM([]byte(resp.Cert)); err != nil {
		return nil, fmt.Errorf("hostcert: the host certificate does not parse: %w", err)
	}
	for _, set := range []struct {
		pems []string
		dst  *[]*x509.Certificate
	}{{resp.HostCAs, &c.HostCAs}, {resp.UserCAs, &c.UserCAs}, {resp.DBCAs, &c.DBCAs}} {
		for _, p := range set.pems {
			cert, err := ca.ParseCertPEM([]byte(p))
			if err != nil {
				return nil, fmt.Errorf("hostcert: a CA certificate does not parse: %w", err)
			}
			*set.dst = append(*set.dst, cert)
		}
	}
	for _, line := range resp.SSHHostCA {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("hostcert: the SSH host CA does not parse: %w", err)
		}
		c.SSHHostCAs = append(c.SSHHostCAs, k)
	}
	if resp.SSHCert != "" {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(resp.SSHCert))
		if err != nil {
			return nil, fmt.Errorf("hostcert: the SSH certificate does not parse: %w", err)
		}
		sc, ok := k.(*ssh.Certificate)
		if !ok {
			return nil, errors.New("hostcert: the SSH certificate is a plain key")
		}
		c.SSHCert = sc
	}
	if len(c.HostCAs) == 0 {
		return nil, errors.New("hostcert: the response carries no host CA")
	}
	return c, nil
}

// TLSCertificate is the host certificate for TLS, with the host CA in the
// chain so that clients can check a pinned CA.
func (c *Credentials) TLSCertificate() *tls.Certificate {
	chain := [][]byte{c.Cert.Raw}
	for _, h := range c.HostCAs {
		chain = append(chain, h.Raw)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: c.Key, Leaf: c.Cert}
}

// SSHSigner signs with the key, presenting the SSH certificate.
func (c *Credentials) SSHSigner() (ssh.Signer, error) {
	if c.SSHCert == nil {
		return nil, errors.New("hostcert: no SSH certificate")
	}
	s, err := ssh.NewSignerFromSigner(c.Key)
	if err != nil {
		return nil, err
	}
	return ssh.NewCertSigner(c.SSHCert, s)
}

// AuthTLSConfig is the configuration for calling the Auth service with
// these credentials.
func (c *Credentials) AuthTLSConfig() *tls.Config {
	return authclient.TLSConfig(c.TLSCertificate(), c.HostCAs)
}

// RenewAt is the middle of the host certificate's life.
func (c *Credentials) RenewAt() time.Time {
	return c.Cert.NotBefore.Add(c.Cert.NotAfter.Sub(c.Cert.NotBefore) / 2)
}

type identityFile struct {
	HostID      string `json:"host_id"`
	Role        string `json:"role"`
	ClusterName string `json:"cluster_name"`
}

// Save writes the credentials to dir (0700; the key 0600), each file
// atomically, the identity last.
func (c *Credentials) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyPEM, err := ca.MarshalPrivateKeyPEM(c.Key)
	if err != nil {
		return err
	}
	var sshCAs, sshCert []byte
	for _, k := range c.SSHHostCAs {
		sshCAs = append(sshCAs, ssh.MarshalAuthorizedKey(k)...)
	}
	if c.SSHCert != nil {
		sshCert = ssh.MarshalAuthorizedKey(c.SSHCert)
	}
	id, _ := json.MarshalIndent(identityFile{HostID: c.HostID, Role: c.Role, ClusterName: c.ClusterName}, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{"key.pem", keyPEM, 0o600},
		{"cert.pem", ca.EncodeCertPEM(c.Cert.Raw), 0o644},
		{"ssh-cert.pub", sshCert, 0o644},
		{"host-cas.pem", pemAll(c.HostCAs), 0o644},
		{"user-cas.pem", pemAll(c.UserCAs), 0o644},
		{"db-cas.pem", pemAll(c.DBCAs), 0o644},
		{"ssh-host-cas.pub", sshCAs, 0o644},
		{"identity.json", append(id, '\n'), 0o600},
	} {
		if err := ca.WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

func pemAll(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, ca.EncodeCertPEM(c.Raw)...)
	}
	return out
}

// Load reads credentials that Save wrote. A directory without them gives
// an error for which errors.Is(err, os.ErrNotExist) holds.
func Load(dir string) (*Credentials, error) {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
	idData, err := read("identity.json")
	if err != nil {
		return nil, err
	}
	var id identityFile
	if err := json.Unmarshal(idData, &id); err != nil {
		return nil, fmt.Errorf("hostcert: %s/identity.json: %w", dir, err)
	}
	c := &Credentials{HostID: id.HostID, Role: id.Role, ClusterName: id.ClusterName}
	keyPEM, err := read("key.pem")
	if err != nil {
		return nil, err
	}
	if c.Key, err = ca.ParsePrivateKeyPEM(keyPEM); err != nil {
		return nil, fmt.Errorf("hostcert: %s/key.pem: %w", dir, err)
	}
	certPEM, err := read("cert.pem")
	if err != nil {
		return nil, err
	}
	if c.Cert, err = ca.ParseCertPEM(certPEM); err != nil {
		return nil, fmt.Errorf("hostcert: %s/cert.pem: %w", dir, err)
	}
	for _, set := range []struct {
		name string
		dst  *[]*x509.Certificate
	}{{"host-cas.pem", &c.HostCAs}, {"user-cas.pem", &c.UserCAs}, {"db-cas.pem", &c.DBCAs}} {
		data, err := read(set.name)
		if err != nil {
			return nil, err
		}
		if len(data) > 0 {
			if *set.dst, err = ca.ParseCertsPEM(data); err != nil {
				return nil, fmt.Errorf("hostcert: %s/%s: %w", dir, set.name, err)
			}
		}
	}
	if data, err := read("ssh-cert.pub"); err == nil && len(data) > 0 {
		k, _, _, _, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			return nil, fmt.Errorf("hostcert: %s/ssh-cert.pub: %w", dir, err)
		}
		c.SSHCert, _ = k.(*ssh.Certificate)
	}
	if data, err := read("ssh-host-cas.pub"); err == nil {
		for len(data) > 0 {
			k, _, _, rest, err := ssh.ParseAuthorizedKey(data)
			if err != nil {
				break
			}
			c.SSHHostCAs = append(c.SSHHostCAs, k)
			data = rest
		}
	}
	return c, nil
}
