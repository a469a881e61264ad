package authclient

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/portcullis-db/portcullis/ca"
)

// TLSConfig returns the configuration for calling the API with a
// certificate (nil for none) and verifying the server against hostCAs.
func TLSConfig(cert *tls.Certificate, hostCAs []*x509.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	for _, c := range hostCAs {
		pool.AddCert(c)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    pool,
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// PinnedTLSConfig returns the configuration for a caller that has no copy of
// the cluster's host CA yet, only its fingerprint (the sha256:... pin that
// `pctl status` prints). The server must send the CA certificate in its
// chain; the connection is accepted only if that CA's fingerprint equals pin
// and the server's certificate verifies against it for the dialed name.
func PinnedTLSConfig(pin string) (*tls.Config, error) {
	if pin == "" {
		return nil, errors.New("authclient: empty CA pin")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is not skipped: VerifyConnection below checks the
		// chain against the pinned CA instead of the system roots.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs, pin)
		},
	}, nil
}

func verifyPinned(cs tls.ConnectionState, pin string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	for _, c := range cs.PeerCertificates[1:] {
		if !c.IsCA || ca.Fingerprint(c) != pin {
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(c)
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:   cs.ServerName,
			Roots:     pool,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("the server's certificate does not verify against the pinned CA: %w", err)
		}
		return nil
	}
	return fmt.Errorf("the server's CA does not match the pin %s; check the pin with `pctl status` on the Auth host", pin)
}

// InsecureTLSConfig returns a configuration that does not verify the
// server. It exists for `pcl login --insecure` on test clusters, which the
// user asks for by name; nothing else uses it.
func InsecureTLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true} // user opted in with --insecure
}

// MarshalPublicKey is the wire form of a public key: a PKIX "PUBLIC KEY"
// PEM block.
func MarshalPublicKey(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("authclient: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}
