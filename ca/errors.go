package ca

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// CertErrorReason says why a certificate was refused.
type CertErrorReason int

const (
	// ReasonUnknownAuthority: not signed by a trusted CA of the expected type.
	ReasonUnknownAuthority CertErrorReason = iota + 1
	// ReasonExpired: past NotAfter.
	ReasonExpired
	// ReasonNotYetValid: before NotBefore.
	ReasonNotYetValid
	// ReasonBadIdentity: identity extension or subject missing, corrupt or
	// tampered with.
	ReasonBadIdentity
	// ReasonWrongKind: e.g. a host certificate where a session certificate
	// is required.
	ReasonWrongKind
	// ReasonWrongCluster: issued for another cluster.
	ReasonWrongCluster
	// ReasonWrongUsage: the certificate's extended key usage does not allow
	// what it is used for (Verifier.Usage).
	ReasonWrongUsage
)

// String returns a short name for r, e.g. "expired".
func (r CertErrorReason) String() string {
	switch r {
	case ReasonUnknownAuthority:
		return "unknown authority"
	case ReasonExpired:
		return "expired"
	case ReasonNotYetValid:
		return "not yet valid"
	case ReasonBadIdentity:
		return "bad identity"
	case ReasonWrongKind:
		return "wrong kind"
	case ReasonWrongCluster:
		return "wrong cluster"
	case ReasonWrongUsage:
		return "wrong usage"
	}
	return "reason " + strconv.Itoa(int(r))
}

// CertError is why a certificate was refused. Its Error is one sentence a
// person can act on, e.g. "certificate for alice expired at
// 2026-11-23T20:00:00Z; log in again". Err, when set, holds the underlying
// cause (for logs and errors.As); it never holds key material.
type CertError struct {
	Reason  CertErrorReason
	Subject string // the certificate's CN as presented (not trusted unless the chain verified)
	Err     error

	at  time.Time // NotAfter or NotBefore, for ReasonExpired / ReasonNotYetValid
	msg string    // overrides the default middle of the sentence
}

func (e *CertError) Error() string {
	var b strings.Builder
	b.WriteString("certificate")
	if e.Subject != "" {
		b.WriteString(" for ")
		b.WriteString(printableSubject(e.Subject))
	}
	b.WriteByte(' ')
	if e.msg != "" {
		b.WriteString(e.msg)
		return b.String()
	}
	const stamp = time.RFC3339
	switch e.Reason {
	case ReasonUnknownAuthority:
		b.WriteString("is not signed by a trusted certificate authority of this cluster; log in to this cluster again")
	case ReasonExpired:
		if e.at.IsZero() {
			b.WriteString("has expired; log in again")
		} else {
			b.WriteString("expired at " + e.at.UTC().Format(stamp) + "; log in again")
		}
	case ReasonNotYetValid:
		if e.at.IsZero() {
			b.WriteString("is not valid yet; check this machine's clock")
		} else {
			b.WriteString("is not valid until " + e.at.UTC().Format(stamp) + "; check this machine's clock and the issuer's")
		}
	case ReasonBadIdentity:
		b.WriteString("carries a missing or corrupt identity; log in again to get a new certificate")
	case ReasonWrongKind:
		b.WriteString("is of the wrong kind for this connection; use the certificate issued for this purpose")
	case ReasonWrongCluster:
		b.WriteString("was issued for another cluster; log in to this cluster")
	case ReasonWrongUsage:
		b.WriteString("does not allow this use (extended key usage); use the certificate issued for this purpose")
	default:
		b.WriteString("was refused; log in again")
	}
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (e *CertError) Unwrap() error { return e.Err }

// printableSubject makes an untrusted CN safe and short for an error message.
func printableSubject(s string) string {
	const max = 64
	quote := false
	n := 0
	for _, r := range s {
		if !unicode.IsPrint(r) || r == ' ' && n == 0 {
			quote = true
		}
		n++
	}
	if n > max {
		s = string([]rune(s)[:max]) + "..."
		quote = true
	}
	if quote {
		return strconv.Quote(s)
	}
	return s
}

func hasReason(err error, r CertErrorReason) bool {
	var ce *CertError
	return errors.As(err, &ce) && ce.Reason == r
}

// IsExpired reports whether err is a *CertError for an expired certificate.
func IsExpired(err error) bool { return hasReason(err, ReasonExpired) }

// IsNotYetValid reports whether err is a *CertError for a certificate that
// is not valid yet.
func IsNotYetValid(err error) bool { return hasReason(err, ReasonNotYetValid) }

// IsUnknownAuthority reports whether err is a *CertError for a certificate
// not signed by a trusted CA.
func IsUnknownAuthority(err error) bool { return hasReason(err, ReasonUnknownAuthority) }

// IsBadIdentity reports whether err is a *CertError for a certificate whose
// identity is missing or corrupt.
func IsBadIdentity(err error) bool { return hasReason(err, ReasonBadIdentity) }

// IsWrongKind reports whether err is a *CertError for a certificate of the
// wrong kind.
func IsWrongKind(err error) bool { return hasReason(err, ReasonWrongKind) }

// IsWrongCluster reports whether err is a *CertError for a certificate of
// another cluster.
func IsWrongCluster(err error) bool { return hasReason(err, ReasonWrongCluster) }

// IsWrongUsage reports whether err is a *CertError for a certificate whose
// extended key usage does not allow the use.
func IsWrongUsage(err error) bool { return hasReason(err, ReasonWrongUsage) }
