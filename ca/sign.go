package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"time"
)

// Default lifetimes. Sign and the other signing methods take the TTL
// explicitly (they refuse zero); these are what callers use when the user or
// the configuration names none.
const (
	// DefaultUserCertTTL is a user certificate's lifetime: one working day.
	// Roles may cap it lower; route certificates are no longer.
	DefaultUserCertTTL = 12 * time.Hour
	// DefaultHostCertTTL is a cluster component's X.509 and SSH certificate
	// lifetime; components renew well before it ends.
	DefaultHostCertTTL = 30 * 24 * time.Hour
	// DefaultSessionCertTTL is a proxy->agent session certificate's
	// lifetime; the proxy caches one per identity and route.
	DefaultSessionCertTTL = 10 * time.Minute
	// DefaultDatabaseClientCertTTL is the lifetime of the client
	// certificate an agent presents to a database; cached per db user.
	DefaultDatabaseClientCertTTL = time.Hour
	// DefaultDatabaseServerCertTTL is the lifetime of a database server
	// certificate written by `pctl auth sign --format db`.
	DefaultDatabaseServerCertTTL = 90 * 24 * time.Hour
)

// SignRequest asks an authority for an identity certificate.
type SignRequest struct {
	// PublicKey is the subject's key; private keys never reach the signer.
	// ECDSA (P-256, P-384, P-521), Ed25519 and RSA of 2048 bits or more are
	// accepted.
	PublicKey crypto.PublicKey
	// Identity is who the certificate speaks for. Kind must fit the
	// authority (user CA: KindUser; host CA: KindHost or KindSession). An
	// empty ClusterName is filled in with the authority's; another cluster's
	// name is refused. Host identities carry system roles only and no route.
	Identity Identity
	// TTL is the requested lifetime; capped by MaxTTL, by Identity.Expires
	// and by the CA's own NotAfter. It must be positive.
	TTL time.Duration
	// MaxTTL is the signer's policy cap (0 = no extra cap).
	MaxTTL time.Duration
	// DNSNames and IPAddresses are a host certificate's server SANs (host
	// certificates only).
	DNSNames    []string
	IPAddresses []net.IP
}

// Sign issues an identity certificate (user, route, host or session), with
// NotBefore one minute in the past to absorb clock skew and NotAfter the
// earliest of now+TTL, now+MaxTTL, Identity.Expires and the CA's NotAfter
// (whole seconds). Extended key usage: ClientAuth for user and session
// certificates, ServerAuth and ClientAuth for host certificates. The
// returned certificate's Raw field is the DER.
func (a *Authority) Sign(req SignRequest) (*x509.Certificate, error) {
	id := req.Identity.Clone()
	switch {
	case a.Type == UserCA && id.Kind == KindUser:
	case a.Type == HostCA && (id.Kind == KindHost || id.Kind == KindSession):
	case a.Type == DatabaseCA:
		return nil, errors.New("ca: the db CA signs only database certificates; use SignDatabaseServer or SignDatabaseClient")
	case !id.Kind.valid():
		return nil, fmt.Errorf("ca: certificate kind %q is unknown; use %q, %q or %q", id.Kind, KindUser, KindHost, KindSession)
	default:
		return nil, fmt.Errorf("ca: the %s CA cannot sign %s certificates; %s", a.Type, id.Kind, kindHint(id.Kind))
	}
	switch id.ClusterName {
	case "":
		id.ClusterName = a.ClusterName
	case a.ClusterName:
	default:
		return nil, fmt.Errorf("ca: identity is for cluster %q but this CA belongs to %q; sign with that cluster's CA", id.ClusterName, a.ClusterName)
	}
	if err := id.checkSubject(); err != nil {
		return nil, err
	}
	if id.Kind == KindHost {
		if len(id.Roles) == 0 {
			return nil, errors.New("ca: a host certificate needs at least one system role; set Identity.Roles")
		}
		for _, r := range id.Roles {
			if !isSystemRole(r) {
				return nil, fmt.Errorf("ca: %q is not a system role; host certificates carry %s, %s, %s or %s", r, SystemRoleAuth, SystemRoleProxy, SystemRoleDatabase, SystemRoleAdmin)
			}
		}
		if id.Route != nil {
			return nil, errors.New("ca: a host certificate cannot carry a route; use a session certificate")
		}
	} else if len(req.DNSNames) > 0 || len(req.IPAddresses) > 0 {
		return nil, fmt.Errorf("ca: DNS names and IP addresses are only for host certificates, not %s certificates; leave them empty", id.Kind)
	}
	if err := checkPublicKey(req.PublicKey); err != nil {
		return nil, err
	}
	if req.TTL <= 0 {
		return nil, fmt.Errorf("ca: certificate TTL %v is not positive; request a lifetime such as %v", req.TTL, DefaultUserCertTTL)
	}
	if req.MaxTTL < 0 {
		return nil, fmt.Errorf("ca: maximum TTL %v is negative; use 0 for no cap", req.MaxTTL)
	}
	now := a.now()
	notAfter := now.Add(req.TTL)
	if req.MaxTTL > 0 && now.Add(req.MaxTTL).Before(notAfter) {
		notAfter = now.Add(req.MaxTTL)
	}
	if !id.Expires.IsZero() && id.Expires.Before(notAfter) {
		notAfter = id.Expires
	}
	notAfter, err := a.capNotAfter(now, notAfter)
	if err != nil {
		return nil, err
	}
	// X.509 times are whole seconds; truncating here keeps every cap an
	// upper bound.
	notAfter = notAfter.Truncate(time.Second)
	if !notAfter.After(now) {
		if !id.Expires.IsZero() && !id.Expires.After(now) {
			return nil, fmt.Errorf("ca: the identity of %s expired at %s; log in again", id.Username, id.Expires.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("ca: the certificate for %s would expire at once; request a TTL of at least a few seconds", id.Username)
	}
	ext, err := EncodeIdentityExtension(id)
	if err != nil {
		return nil, err
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if id.Kind == KindHost {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		Subject:               id.Subject(),
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              leafKeyUsage(req.PublicKey),
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
		ExtraExtensions:       []pkix.Extension{ext},
	}
	return a.issue(tmpl, req.PublicKey)
}

func kindHint(k CertKind) string {
	if k == KindUser {
		return "use the user CA"
	}
	return "use the host CA"
}

// issue signs tmpl (with a fresh random serial) for pub and parses the result.
func (a *Authority) issue(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := randomSerial(a.rand())
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(a.rand(), tmpl, a.Cert, pub, a.Signer)
	if err != nil {
		return nil, fmt.Errorf("ca: sign certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse certificate just signed for %s: %w", tmpl.Subject.CommonName, err)
	}
	return cert, nil
}

// leafKeyUsage is DigitalSignature, plus KeyEncipherment for RSA keys (TLS
// 1.2 RSA key exchange).
func leafKeyUsage(pub crypto.PublicKey) x509.KeyUsage {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	return x509.KeyUsageDigitalSignature
}

// checkPublicKey accepts the subject key types this package signs.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case nil:
		return errors.New("ca: no public key to sign; pass the subject's public key")
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return errors.New("ca: the public key's elliptic curve is not supported; use P-256")
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("ca: the Ed25519 public key is malformed; generate a new key")
		}
		return nil
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < 2048 {
			return errors.New("ca: RSA public keys must be at least 2048 bits; use an ECDSA P-256 key")
		}
		return nil
	}
	return fmt.Errorf("ca: public keys of type %T are not supported; use an ECDSA P-256 key", pub)
}

// PublicKeyFromCSR parses a DER certificate signing request, checks its
// self-signature (proof that the requester holds the private key) and returns
// its public key. Nothing else in the CSR is used: the identity comes from
// the signer.
func PublicKeyFromCSR(csrDER []byte) (crypto.PublicKey, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("ca: the certificate signing request cannot be parsed (%v); send a DER-encoded CSR", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("ca: the certificate signing request's signature is invalid (%v); generate a new CSR", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr.PublicKey, nil
}

// SignDatabaseServer issues a database server certificate (database CA
// only): CN=hosts[0], every host as a DNS or IP SAN, ServerAuth.
func (a *Authority) SignDatabaseServer(pub crypto.PublicKey, hosts []string, ttl time.Duration) (*x509.Certificate, error) {
	if err := a.requireType(DatabaseCA, "database server certificates"); err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		return nil, errors.New("ca: a database server certificate needs at least one host name or IP address; pass the server's hosts")
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: hosts[0]},
		KeyUsage:              leafKeyUsage(pub),
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if err := checkName("database server host", h); err != nil {
			return nil, err
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return a.signSimple(tmpl, pub, ttl)
}

// SignDatabaseClient issues the client certificate an agent presents to a
// database (database CA only). Its subject is exactly CN=dbUser (so that
// MariaDB's REQUIRE SUBJECT '/CN=alice' and PostgreSQL's cert auth match);
// ClientAuth.
func (a *Authority) SignDatabaseClient(pub crypto.PublicKey, dbUser string, ttl time.Duration) (*x509.Certificate, error) {
	if err := a.requireType(DatabaseCA, "database client certificates"); err != nil {
		return nil, err
	}
	if err := checkName("database user", dbUser); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: dbUser},
		KeyUsage:              leafKeyUsage(pub),
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	return a.signSimple(tmpl, pub, ttl)
}

// signSimple fills in the validity window of a certificate without an
// identity and issues it.
func (a *Authority) signSimple(tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration) (*x509.Certificate, error) {
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("ca: certificate TTL %v is not positive; request a lifetime such as %v", ttl, DefaultDatabaseClientCertTTL)
	}
	now := a.now()
	notAfter, err := a.capNotAfter(now, now.Add(ttl))
	if err != nil {
		return nil, err
	}
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = notAfter.Truncate(time.Second)
	if !tmpl.NotAfter.After(now) {
		return nil, fmt.Errorf("ca: the certificate for %s would expire at once; request a TTL of at least a few seconds", tmpl.Subject.CommonName)
	}
	return a.issue(tmpl, pub)
}
