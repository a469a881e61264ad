package authclient

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/portcullis-db/portcullis/ca"
)

// IdentityFile is a key, its certificate and the host CAs that verify the
// Auth service, in one PEM file: what pctl uses to call the API (the admin
// identity the Auth service writes into its data dir, or one exported for
// automation). The file is written 0600.
type IdentityFile struct {
	Key     crypto.Signer
	Cert    *x509.Certificate
	HostCAs []*x509.Certificate
}

// Write stores f at path with mode 0600, atomically.
func (f *IdentityFile) Write(path string) error {
	keyPEM, err := ca.MarshalPrivateKeyPEM(f.Key)
	if err != nil {
		return err
	}
	out := append([]byte(nil), keyPEM...)
	out = append(out, ca.EncodeCertPEM(f.Cert.Raw)...)
	for _, c := range f.HostCAs {
		out = append(out, ca.EncodeCertPEM(c.Raw)...)
	}
	return ca.WriteFileAtomic(path, out, 0o600)
}

// ReadIdentityFile loads an identity file. The first certificate that is
// not a CA is the identity's; CA certificates are the host CAs.
func ReadIdentityFile(path string) (*IdentityFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading identity file: %w", err)
	}
	f := &IdentityFile{}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY", "EC PRIVATE KEY":
			f.Key, err = ca.ParsePrivateKeyPEM(pem.EncodeToMemory(b))
			if err != nil {
				return nil, fmt.Errorf("identity file %s: %w", path, err)
			}
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("identity file %s: %w", path, err)
			}
			if c.IsCA {
				f.HostCAs = append(f.HostCAs, c)
			} else if f.Cert == nil {
				f.Cert = c
			}
		}
	}
	if f.Key == nil || f.Cert == nil || len(f.HostCAs) == 0 {
		return nil, fmt.Errorf("identity file %s needs a private key, a certificate and the host CA", path)
	}
	return f, nil
}

// TLSCertificate is the identity as a TLS client certificate.
func (f *IdentityFile) TLSCertificate() *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{f.Cert.Raw}, PrivateKey: f.Key, Leaf: f.Cert}
}

// TLSConfig is the configuration for calling the API with this identity.
func (f *IdentityFile) TLSConfig() *tls.Config {
	return TLSConfig(f.TLSCertificate(), f.HostCAs)
}

// Files the Auth service keeps in its data dir, for pctl on the same host.
const (
	// AdminIdentityFile is the admin identity (an [IdentityFile]).
	AdminIdentityFile = "admin-identity.pem"
	// AddrFile holds the host:port the API listens on.
	AddrFile = "auth.addr"
)
