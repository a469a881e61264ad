package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// AuthorityType is which of a cluster's three authorities a key pair is.
type AuthorityType string

const (
	// UserCA signs user and route certificates.
	UserCA AuthorityType = "user"
	// HostCA signs proxy, agent and Auth service host certificates (X.509
	// and SSH) and the proxy->agent session certificates.
	HostCA AuthorityType = "host"
	// DatabaseCA signs database server certificates and the client
	// certificates agents present to databases.
	DatabaseCA AuthorityType = "db"
)

func (t AuthorityType) valid() bool {
	switch t {
	case UserCA, HostCA, DatabaseCA:
		return true
	}
	return false
}

// CAValidity is how long a new authority's certificate is valid.
const CAValidity = 10 * 365 * 24 * time.Hour

// clockSkew is how far NotBefore (and SSH ValidAfter) is set in the past so
// that a peer whose clock is a little behind accepts a fresh certificate.
const clockSkew = time.Minute

// An Authority is one CA key pair with its self-signed certificate.
// Clock and Rand may be set after construction (ParseAuthority leaves them
// nil). Once set up, an Authority is safe for concurrent use if Rand is
// (crypto/rand is; math/rand is not).
type Authority struct {
	Type        AuthorityType
	ClusterName string
	Cert        *x509.Certificate
	Signer      crypto.Signer    // ECDSA P-256 for authorities made by NewAuthority
	Clock       func() time.Time // nil means time.Now
	Rand        io.Reader        // nil means crypto/rand.Reader; used for serial numbers and signatures
}

func (a *Authority) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

func (a *Authority) rand() io.Reader {
	if a.Rand != nil {
		return a.Rand
	}
	return rand.Reader
}

// NewAuthority makes a new CA key pair (ECDSA P-256) and a self-signed
// certificate valid for CAValidity, with CN "<cluster> <type> CA" and
// O=<cluster>. A nil clock means time.Now; a nil rand means crypto/rand.
func NewAuthority(t AuthorityType, clusterName string, clock func() time.Time, rnd io.Reader) (*Authority, error) {
	if !t.valid() {
		return nil, fmt.Errorf("ca: authority type %q is unknown; use %q, %q or %q", t, UserCA, HostCA, DatabaseCA)
	}
	if err := checkName("cluster name", clusterName); err != nil {
		return nil, err
	}
	a := &Authority{Type: t, ClusterName: clusterName, Clock: clock, Rand: rnd}
	key, err := ecdsa.GenerateKey(elliptic.P256(), a.rand())
	if err != nil {
		return nil, fmt.Errorf("ca: generate %s CA key: %w", t, err)
	}
	serial, err := randomSerial(a.rand())
	if err != nil {
		return nil, err
	}
	now := a.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName(clusterName, t), Organization: []string{clusterName}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(a.rand(), tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: self-sign %s CA certificate: %w", t, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse new %s CA certificate: %w", t, err)
	}
	a.Cert = cert
	a.Signer = key
	return a, nil
}

func caCommonName(cluster string, t AuthorityType) string {
	return cluster + " " + string(t) + " CA"
}

// ParseAuthority loads an authority from its certificate and private key
// (PEM; the key as PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY"). It checks
// that the key belongs to the certificate, that the certificate is a CA, and,
// when its CN names one of this package's authority types, that it is type t.
// ClusterName is taken from the certificate's O. Clock and Rand are left nil.
func ParseAuthority(t AuthorityType, certPEM, keyPEM []byte) (*Authority, error) {
	if !t.valid() {
		return nil, fmt.Errorf("ca: authority type %q is unknown; use %q, %q or %q", t, UserCA, HostCA, DatabaseCA)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: %s CA certificate: %w", t, err)
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: %s CA key: %w", t, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("ca: the %s CA certificate %q is not a CA certificate; pass the CA's certificate", t, cert.Subject.CommonName)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("ca: the %s CA key does not belong to its certificate; pass the matching key", t)
	}
	if len(cert.Subject.Organization) == 0 || cert.Subject.Organization[0] == "" {
		return nil, fmt.Errorf("ca: the %s CA certificate has no organization (cluster name); use a certificate made by NewAuthority", t)
	}
	cluster := cert.Subject.Organization[0]
	for _, other := range []AuthorityType{UserCA, HostCA, DatabaseCA} {
		if other != t && cert.Subject.CommonName == caCommonName(cluster, other) {
			return nil, fmt.Errorf("ca: the certificate is the %s CA of %s, not its %s CA; pass the right files", other, cluster, t)
		}
	}
	return &Authority{Type: t, ClusterName: cluster, Cert: cert, Signer: key}, nil
}

// publicKeysEqual compares two public keys of the standard library's types.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// CertPEM returns the CA certificate in PEM.
func (a *Authority) CertPEM() []byte { return EncodeCertPEM(a.Cert.Raw) }

// KeyPEM returns the CA private key as PKCS#8 "PRIVATE KEY" PEM.
func (a *Authority) KeyPEM() ([]byte, error) { return MarshalPrivateKeyPEM(a.Signer) }

// Fingerprint returns "sha256:<hex>" of the CA certificate's
// SubjectPublicKeyInfo: the pin that clients and agents check.
func (a *Authority) Fingerprint() string { return Fingerprint(a.Cert) }

// CertPool returns a pool holding only the CA certificate.
func (a *Authority) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.Cert)
	return p
}

// Fingerprint returns "sha256:<hex>" of cert's SubjectPublicKeyInfo, the pin
// format. It stays the same when a CA certificate is re-issued for the same
// key.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// randomSerial returns a positive 128-bit random serial number.
func randomSerial(r io.Reader) (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("ca: read random serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

// capNotAfter returns the earlier of t and the CA certificate's NotAfter, or
// an error when the CA itself has expired at now.
func (a *Authority) capNotAfter(now, t time.Time) (time.Time, error) {
	if a.Cert == nil || a.Signer == nil {
		return time.Time{}, errors.New("ca: the authority has no certificate or key; use NewAuthority or ParseAuthority")
	}
	if !now.Before(a.Cert.NotAfter) {
		return time.Time{}, fmt.Errorf("ca: the %s CA expired at %s; rotate the certificate authority", a.Type, a.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if t.After(a.Cert.NotAfter) {
		t = a.Cert.NotAfter
	}
	return t, nil
}

// requireType refuses to sign with the wrong kind of authority.
func (a *Authority) requireType(t AuthorityType, what string) error {
	if a.Type != t {
		return fmt.Errorf("ca: %s are signed by the %s CA, not the %s CA; use the %s authority", what, t, a.Type, t)
	}
	return nil
}
