package ca

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"
)

// CertKind says what an identity certificate is for; it is stored in the
// identity extension.
type CertKind string

const (
	// KindUser is a person's certificate, signed by the user CA. It is a route
	// certificate when Identity.Route is set.
	KindUser CertKind = "user"
	// KindHost is a cluster component's certificate, signed by the host CA:
	// Identity.Username is the host ID and Identity.Roles its system roles.
	KindHost CertKind = "host"
	// KindSession is the short-lived certificate the proxy presents to an
	// agent, signed by the host CA and carrying a user's identity and route.
	KindSession CertKind = "session"
)

// valid reports whether k is one of the kinds this package knows.
func (k CertKind) valid() bool {
	switch k {
	case KindUser, KindHost, KindSession:
		return true
	}
	return false
}

// System roles carried in host certificates (Identity.Roles when Kind is
// KindHost).
const (
	SystemRoleAuth     = "Auth"
	SystemRoleProxy    = "Proxy"
	SystemRoleDatabase = "Db"
	// SystemRoleAdmin is the admin identity the Auth service writes to its
	// data directory for pctl.
	SystemRoleAdmin = "Admin"
)

func isSystemRole(r string) bool {
	switch r {
	case SystemRoleAuth, SystemRoleProxy, SystemRoleDatabase, SystemRoleAdmin:
		return true
	}
	return false
}

// Route is the database a route certificate is for.
type Route struct {
	ServiceName string // database service name, e.g. "pg1"
	Protocol    string // "postgres" or "mysql"
	DBUser      string
	DBName      string
}

// Identity is who a certificate speaks for. Username and Roles live in the
// certificate's subject (CN and O); everything else lives in the identity
// extension (see EncodeIdentityExtension).
//
// Canonical form: empty Roles and Traits are nil, a trait with no values has
// a nil value list, and value order is kept. IdentityFromCertificate always
// returns the canonical form; Equal treats nil and empty as the same.
type Identity struct {
	Kind        CertKind
	ClusterName string
	Username    string              // X.509 CN
	Roles       []string            // X.509 O (order kept)
	Traits      map[string][]string // e.g. "db_users": ["alice"]; nil when empty
	LoginIP     string
	Route       *Route // nil for a plain user certificate
	// Expires is, as the output of decoding, the certificate's NotAfter. As
	// input to Sign it is an upper bound on NotAfter (zero means none).
	Expires time.Time
}

var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}
)

// Subject returns the X.509 subject for id: CN=Username, O=Roles. Each role
// is its own RDN so that the order of Roles survives DER encoding (a
// multi-valued RDN is a SET, which DER sorts).
func (id *Identity) Subject() pkix.Name {
	n := pkix.Name{CommonName: id.Username, Organization: slices.Clone(id.Roles)}
	if len(id.Roles) > 1 {
		for _, r := range id.Roles {
			n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidOrganization, Value: r})
		}
		n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidCommonName, Value: id.Username})
	}
	return n
}

// Equal reports whether id and other describe the same identity. Nil and
// empty Roles, Traits and trait values are equal; order of Roles and of each
// trait's values matters; Expires is compared with time.Time.Equal.
func (id *Identity) Equal(other *Identity) bool {
	if id == nil || other == nil {
		return id == other
	}
	if id.Kind != other.Kind || id.ClusterName != other.ClusterName ||
		id.Username != other.Username || id.LoginIP != other.LoginIP ||
		!id.Expires.Equal(other.Expires) || !slices.Equal(id.Roles, other.Roles) {
		return false
	}
	if len(id.Traits) != len(other.Traits) {
		return false
	}
	for k, v := range id.Traits {
		ov, ok := other.Traits[k]
		if !ok || !slices.Equal(v, ov) {
			return false
		}
	}
	if (id.Route == nil) != (other.Route == nil) {
		return false
	}
	return id.Route == nil || *id.Route == *other.Route
}

// checkName refuses an empty, invalid or unprintable name (a username, role
// or host ID), naming what it is in the error.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("ca: %s is empty; set it", what)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("ca: %s is not valid UTF-8; use a UTF-8 name", what)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("ca: %s %q contains an unprintable character; remove it", what, s)
		}
	}
	return nil
}

// checkSubject checks the parts of id that go into the X.509 subject.
func (id *Identity) checkSubject() error {
	if err := checkName("username", id.Username); err != nil {
		return err
	}
	for _, r := range id.Roles {
		if err := checkName("role", r); err != nil {
			return err
		}
	}
	return nil
}

// Clone returns a deep copy of id: changing one does not change the other.
func (id *Identity) Clone() *Identity {
	c := *id
	c.Roles = slices.Clone(id.Roles)
	if id.Traits != nil {
		c.Traits = make(map[string][]string, len(id.Traits))
		for k, v := range id.Traits {
			c.Traits[k] = slices.Clone(v)
		}
	}
	if id.Route != nil {
		r := *id.Route
		c.Route = &r
	}
	return &c
}
