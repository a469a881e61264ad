package ca

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// OIDIdentity is the OID of the identity extension (non-critical):
// 2.25.1594013761.1. It is a 31-bit arc under 2.25 because Go's X.509 parser
// refuses extension OIDs with an arc of 2^31 or more, so the usual 128-bit
// UUID arc would make the certificates unparseable by Go.
//
// This variable is for reference only: the package itself uses its own copy,
// so changing it changes nothing.
var OIDIdentity = oidIdentity()

func oidIdentity() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{2, 25, 1594013761, 1} }

// identityVersion is the only version of the extension this package writes
// and reads.
const identityVersion = 1

// MaxIdentityExtensionSize caps the identity extension's DER size, for both
// encoding and decoding.
const MaxIdentityExtensionSize = 64 << 10

// The identity extension's value is the DER encoding of
//
//	IdentityExtension ::= SEQUENCE {
//	    version  INTEGER (1),
//	    kind     UTF8String,            -- "user", "host" or "session"
//	    cluster  UTF8String,
//	    loginIP  UTF8String,
//	    traits   SEQUENCE OF Trait,     -- sorted by name, names unique
//	    route    [0] EXPLICIT Route OPTIONAL }
//	Trait ::= SEQUENCE { name UTF8String, values SEQUENCE OF UTF8String }
//	Route ::= SEQUENCE { service UTF8String, protocol UTF8String,
//	                     dbUser UTF8String, dbName UTF8String }
//
// Decoding accepts exactly what encoding produces (it re-encodes and compares),
// so every identity has one encoding.
type identityWire struct {
	Version int
	Kind    string `asn1:"utf8"`
	Cluster string `asn1:"utf8"`
	LoginIP string `asn1:"utf8"`
	Traits  []traitWire
	Route   asn1.RawValue `asn1:"optional"` // [0] EXPLICIT routeWire
}

type traitWire struct {
	Name   string          `asn1:"utf8"`
	Values []asn1.RawValue // UTF8String each (encoding/asn1 has no tag for slice elements)
}

type routeWire struct {
	Service  string `asn1:"utf8"`
	Protocol string `asn1:"utf8"`
	DBUser   string `asn1:"utf8"`
	DBName   string `asn1:"utf8"`
}

// EncodeIdentityExtension returns the identity extension for id: kind,
// cluster, login IP, traits and route. Username, Roles and Expires are not in
// it (they are the certificate's subject and NotAfter).
func EncodeIdentityExtension(id *Identity) (pkix.Extension, error) {
	der, err := encodeIdentity(id)
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidIdentity(), Critical: false, Value: der}, nil
}

func encodeIdentity(id *Identity) ([]byte, error) {
	if id == nil {
		return nil, errors.New("ca: identity is nil; pass the identity to encode")
	}
	if !id.Kind.valid() {
		return nil, fmt.Errorf("ca: certificate kind %q is unknown; use %q, %q or %q", id.Kind, KindUser, KindHost, KindSession)
	}
	for _, f := range []struct{ what, s string }{
		{"cluster name", id.ClusterName}, {"login IP", id.LoginIP},
	} {
		if !utf8.ValidString(f.s) {
			return nil, fmt.Errorf("ca: identity %s is not valid UTF-8; use UTF-8", f.what)
		}
	}
	w := identityWire{Version: identityVersion, Kind: string(id.Kind), Cluster: id.ClusterName, LoginIP: id.LoginIP}
	names := make([]string, 0, len(id.Traits))
	for name := range id.Traits {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" || !utf8.ValidString(name) {
			return nil, fmt.Errorf("ca: trait name %q is empty or not valid UTF-8; use a UTF-8 name", name)
		}
		t := traitWire{Name: name, Values: make([]asn1.RawValue, 0, len(id.Traits[name]))}
		for _, v := range id.Traits[name] {
			if !utf8.ValidString(v) {
				return nil, fmt.Errorf("ca: a value of trait %q is not valid UTF-8; use UTF-8", name)
			}
			t.Values = append(t.Values, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte(v)})
		}
		w.Traits = append(w.Traits, t)
	}
	if r := id.Route; r != nil {
		for _, s := range []string{r.ServiceName, r.Protocol, r.DBUser, r.DBName} {
			if !utf8.ValidString(s) {
				return nil, errors.New("ca: a route field is not valid UTF-8; use UTF-8")
			}
		}
		inner, err := asn1.Marshal(routeWire{Service: r.ServiceName, Protocol: r.Protocol, DBUser: r.DBUser, DBName: r.DBName})
		if err != nil {
			return nil, fmt.Errorf("ca: encode route: %w", err)
		}
		w.Route = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner}
	}
	der, err := asn1.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("ca: encode identity extension: %w", err)
	}
	if len(der) > MaxIdentityExtensionSize {
		return nil, fmt.Errorf("ca: identity extension is %d bytes, over the %d-byte limit; carry fewer or shorter traits", len(der), MaxIdentityExtensionSize)
	}
	return der, nil
}

// decodeIdentity decodes an identity extension's value into the Kind,
// ClusterName, LoginIP, Traits and Route of a canonical Identity.
func decodeIdentity(der []byte) (*Identity, error) {
	if len(der) > MaxIdentityExtensionSize {
		return nil, fmt.Errorf("identity extension is %d bytes, over the %d-byte limit", len(der), MaxIdentityExtensionSize)
	}
	var w identityWire
	rest, err := asn1.Unmarshal(der, &w)
	if err != nil {
		return nil, fmt.Errorf("identity extension is malformed: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("identity extension has %d trailing bytes", len(rest))
	}
	if w.Version != identityVersion {
		return nil, fmt.Errorf("identity extension version %d is not supported (want %d)", w.Version, identityVersion)
	}
	id := &Identity{Kind: CertKind(w.Kind), ClusterName: w.Cluster, LoginIP: w.LoginIP}
	if !id.Kind.valid() {
		return nil, fmt.Errorf("identity extension has unknown kind %q", w.Kind)
	}
	for i, t := range w.Traits {
		if t.Name == "" {
			return nil, errors.New("identity extension has a trait with an empty name")
		}
		if i > 0 {
			switch prev := w.Traits[i-1].Name; {
			case prev == t.Name:
				return nil, fmt.Errorf("identity extension has trait %q twice", t.Name)
			case prev > t.Name:
				return nil, errors.New("identity extension traits are not sorted by name")
			}
		}
		var values []string
		for _, v := range t.Values {
			if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagUTF8String || v.IsCompound {
				return nil, fmt.Errorf("identity extension trait %q has a value that is not a UTF8String", t.Name)
			}
			if !utf8.Valid(v.Bytes) {
				return nil, fmt.Errorf("identity extension trait %q has a value that is not valid UTF-8", t.Name)
			}
			values = append(values, string(v.Bytes))
		}
		if id.Traits == nil {
			id.Traits = make(map[string][]string, len(w.Traits))
		}
		id.Traits[t.Name] = values
	}
	if len(w.Route.FullBytes) != 0 {
		if w.Route.Class != asn1.ClassContextSpecific || w.Route.Tag != 0 || !w.Route.IsCompound {
			return nil, errors.New("identity extension has an unexpected element after the traits")
		}
		var r routeWire
		rest, err := asn1.Unmarshal(w.Route.Bytes, &r)
		if err != nil {
			return nil, fmt.Errorf("identity extension route is malformed: %w", err)
		}
		if len(rest) != 0 {
			return nil, errors.New("identity extension route has trailing bytes")
		}
		id.Route = &Route{ServiceName: r.Service, Protocol: r.Protocol, DBUser: r.DBUser, DBName: r.DBName}
	}
	// One identity, one encoding: refuse anything encodeIdentity would not
	// have written (other string types, extra elements, long forms).
	again, err := encodeIdentity(id)
	if err != nil {
		return nil, fmt.Errorf("identity extension does not re-encode: %w", err)
	}
	if !bytes.Equal(again, der) {
		return nil, errors.New("identity extension is not in canonical form")
	}
	return id, nil
}

// IdentityFromCertificate decodes the identity a certificate carries: CN,
// O, the identity extension and NotAfter. It does not verify the
// certificate (see Verifier). A missing, duplicated or corrupt extension or a
// bad subject is a *CertError with Reason ReasonBadIdentity.
func IdentityFromCertificate(cert *x509.Certificate) (*Identity, error) {
	if cert == nil {
		return nil, &CertError{Reason: ReasonBadIdentity, msg: "is missing; present a certificate"}
	}
	subject := cert.Subject.CommonName
	bad := func(err error) error {
		return &CertError{Reason: ReasonBadIdentity, Subject: subject, Err: err}
	}
	var ext *pkix.Extension
	for i := range cert.Extensions {
		if cert.Extensions[i].Id.Equal(oidIdentity()) {
			if ext != nil {
				return nil, bad(errors.New("certificate has two identity extensions"))
			}
			ext = &cert.Extensions[i]
		}
	}
	if ext == nil {
		return nil, bad(errors.New("certificate has no identity extension"))
	}
	if ext.Critical {
		return nil, bad(errors.New("identity extension is marked critical"))
	}
	id, err := decodeIdentity(ext.Value)
	if err != nil {
		return nil, bad(err)
	}
	cn := 0
	for _, atv := range cert.Subject.Names {
		if atv.Type.Equal(oidCommonName) {
			cn++
		}
	}
	if cn != 1 {
		return nil, bad(fmt.Errorf("certificate subject has %d common names, want 1", cn))
	}
	id.Username = cert.Subject.CommonName
	if len(cert.Subject.Organization) > 0 {
		id.Roles = slices.Clone(cert.Subject.Organization)
	}
	if err := id.checkSubject(); err != nil {
		return nil, bad(err)
	}
	id.Expires = cert.NotAfter
	return id, nil
}
