package ca

import (
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// A Verifier checks identity certificates presented by peers. Its zero
// value trusts nothing; set Roots.
type Verifier struct {
	// Roots are the trusted CA certificates (several during rotation).
	Roots []*x509.Certificate
	// Kinds are the accepted kinds; empty means any.
	Kinds []CertKind
	// Usage is the extended key usage the leaf must allow, e.g.
	// x509.ExtKeyUsageClientAuth for peers connecting in. The zero value,
	// x509.ExtKeyUsageAny, skips the check.
	Usage x509.ExtKeyUsage
	// ClusterName is the cluster the identity must belong to; "" means
	// don't check.
	ClusterName string
	// Clock is the current time; nil means time.Now.
	Clock func() time.Time
}

func (v *Verifier) now() time.Time {
	if v.Clock != nil {
		return v.Clock()
	}
	return time.Now()
}

// Verify checks leaf (chain[0], with optional intermediates after it)
// against Roots at Clock() and returns the identity it carries. Checks run
// in this order, and the first failure is returned as a *CertError:
//
//  1. signature chain: a certificate not signed by one of Roots is
//     ReasonUnknownAuthority even if it has also expired;
//  2. validity window at Clock(): ReasonExpired or ReasonNotYetValid;
//  3. identity extension and subject: ReasonBadIdentity;
//  4. kind (Kinds): ReasonWrongKind;
//  5. extended key usage (Usage): ReasonWrongUsage;
//  6. cluster (ClusterName): ReasonWrongCluster.
func (v *Verifier) Verify(chain []*x509.Certificate) (*Identity, error) {
	if len(chain) == 0 || chain[0] == nil {
		return nil, &CertError{Reason: ReasonUnknownAuthority, msg: "was not presented; log in first"}
	}
	leaf := chain[0]
	subject := leaf.Subject.CommonName

	// 1. The chain, checked at a time inside the leaf's own validity window
	// so that an expired certificate from a foreign CA is reported as
	// foreign, and expiry is judged below against Clock() alone.
	now := v.now()
	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	roots := x509.NewCertPool()
	for _, r := range v.Roots {
		if r != nil {
			roots.AddCert(r)
		}
	}
	var inter *x509.CertPool
	if len(chain) > 1 {
		inter = x509.NewCertPool()
		for _, c := range chain[1:] {
			if c != nil {
				inter.AddCert(c)
			}
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, &CertError{Reason: ReasonUnknownAuthority, Subject: subject, Err: err}
	}
	if leaf.IsCA {
		return nil, &CertError{Reason: ReasonBadIdentity, Subject: subject,
			msg: "is a certificate authority, not an identity; present an identity certificate"}
	}

	// 2. Validity at Clock().
	if now.After(leaf.NotAfter) {
		return nil, &CertError{Reason: ReasonExpired, Subject: subject, at: leaf.NotAfter,
			Err: fmt.Errorf("certificate expired at %s, now is %s", leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	if now.Before(leaf.NotBefore) {
		return nil, &CertError{Reason: ReasonNotYetValid, Subject: subject, at: leaf.NotBefore,
			Err: fmt.Errorf("certificate is valid from %s, now is %s", leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}

	// 3. Identity.
	id, err := IdentityFromCertificate(leaf)
	if err != nil {
		return nil, err
	}

	// 4. Kind.
	if len(v.Kinds) > 0 && !slices.Contains(v.Kinds, id.Kind) {
		return nil, &CertError{Reason: ReasonWrongKind, Subject: subject,
			Err: fmt.Errorf("certificate kind is %q, want one of %q", id.Kind, v.Kinds),
			msg: fmt.Sprintf("is a %s certificate where a %s certificate is required; use the certificate issued for this purpose", id.Kind, kindList(v.Kinds))}
	}

	// 5. Usage.
	if v.Usage != x509.ExtKeyUsageAny &&
		!slices.Contains(leaf.ExtKeyUsage, v.Usage) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil, &CertError{Reason: ReasonWrongUsage, Subject: subject,
			Err: fmt.Errorf("certificate extended key usage %v does not include %v", leaf.ExtKeyUsage, v.Usage),
			msg: fmt.Sprintf("does not allow %s; use the certificate issued for this purpose", usageName(v.Usage))}
	}

	// 6. Cluster.
	if v.ClusterName != "" && id.ClusterName != v.ClusterName {
		return nil, &CertError{Reason: ReasonWrongCluster, Subject: subject,
			Err: fmt.Errorf("certificate cluster is %q, want %q", id.ClusterName, v.ClusterName),
			msg: fmt.Sprintf("was issued by cluster %s, not %s; log in to %s", printableSubject(id.ClusterName), v.ClusterName, v.ClusterName)}
	}
	return id, nil
}

// VerifyPeerCertificate adapts Verify to tls.Config.VerifyPeerCertificate:
// rawCerts is the peer's chain, leaf first. Use it with ClientAuth
// RequireAnyClientCert (or InsecureSkipVerify on a client) so that this, not
// crypto/tls, does the verification.
func (v *Verifier) VerifyPeerCertificate(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return &CertError{Reason: ReasonUnknownAuthority, msg: "was not presented; log in first"}
	}
	chain := make([]*x509.Certificate, 0, len(rawCerts))
	for _, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return &CertError{Reason: ReasonBadIdentity, Err: err,
				msg: "presented cannot be parsed; log in again to get a new certificate"}
		}
		chain = append(chain, c)
	}
	_, err := v.Verify(chain)
	return err
}

func kindList(kinds []CertKind) string {
	s := ""
	for i, k := range kinds {
		switch {
		case i == 0:
		case i == len(kinds)-1:
			s += " or "
		default:
			s += ", "
		}
		s += string(k)
	}
	return s
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageClientAuth:
		return "client authentication"
	case x509.ExtKeyUsageServerAuth:
		return "server authentication"
	}
	return fmt.Sprintf("extended key usage %d", u)
}
