package ca

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// extensionIdentities are identities whose extension part (everything but
// Username, Roles and Expires) must round-trip exactly, in canonical form.
func extensionIdentities() map[string]*Identity {
	many := map[string][]string{}
	for i := range 200 {
		many[fmt.Sprintf("trait-%03d", i)] = []string{fmt.Sprint(i), "z", "a", fmt.Sprint(i)} // order and duplicates kept
	}
	return map[string]*Identity{
		"minimal":        {Kind: KindUser},
		"cluster":        {Kind: KindHost, ClusterName: "prod"},
		"login ip":       {Kind: KindUser, ClusterName: "c", LoginIP: "2001:db8::1"},
		"empty values":   {Kind: KindUser, ClusterName: "c", Traits: map[string][]string{"db_names": nil}},
		"traits":         {Kind: KindUser, ClusterName: "c", Traits: map[string][]string{"db_users": {"alice", "postgres"}, "db_names": {"app"}}},
		"many traits":    {Kind: KindUser, ClusterName: "c", Traits: many},
		"unicode":        {Kind: KindUser, ClusterName: "clüster-日本", LoginIP: "::1", Traits: map[string][]string{"ключ": {"значение", "🚀", ""}, "名": {"ø"}}},
		"route":          {Kind: KindUser, ClusterName: "c", Route: &Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "alice", DBName: "app"}},
		"empty route":    {Kind: KindUser, ClusterName: "c", Route: &Route{}},
		"session + all":  {Kind: KindSession, ClusterName: "c", LoginIP: "10.0.0.1", Traits: map[string][]string{"a": {"1"}}, Route: &Route{ServiceName: "my", Protocol: "mysql", DBUser: "root", DBName: "ünï"}},
		"printable only": {Kind: KindUser, ClusterName: "abc", LoginIP: "1.2.3.4", Route: &Route{ServiceName: "a", Protocol: "b", DBUser: "c", DBName: "d"}},
	}
}

func TestIdentityExtensionRoundTrip(t *testing.T) {
	for name, want := range extensionIdentities() {
		t.Run(name, func(t *testing.T) {
			ext, err := EncodeIdentityExtension(want)
			if err != nil {
				t.Fatal(err)
			}
			if !ext.Id.Equal(asn1.ObjectIdentifier{2, 25, 1594013761, 1}) || ext.Critical {
				t.Fatalf("extension id %v critical %v, want 2.25.1594013761.1 non-critical", ext.Id, ext.Critical)
			}
			got, err := decodeIdentity(ext.Value)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
			// Exact: the decoded value is the canonical form of want.
			if !reflect.DeepEqual(got, canonical(want)) {
				t.Fatalf("decoded value is not canonical:\n got %#v\nwant %#v", got, canonical(want))
			}
			again, err := EncodeIdentityExtension(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Value, ext.Value) {
				t.Fatal("re-encoding the decoded identity gives different bytes")
			}
		})
	}
}

// canonical returns the extension part of id in the form decoding produces.
func canonical(id *Identity) *Identity {
	c := &Identity{Kind: id.Kind, ClusterName: id.ClusterName, LoginIP: id.LoginIP}
	if len(id.Traits) > 0 {
		c.Traits = map[string][]string{}
		for k, v := range id.Traits {
			if len(v) == 0 {
				c.Traits[k] = nil
			} else {
				c.Traits[k] = append([]string(nil), v...)
			}
		}
	}
	if id.Route != nil {
		r := *id.Route
		c.Route = &r
	}
	return c
}

func TestIdentityCertificateRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)
	user := newTestAuthority(t, UserCA, "example", fixedClock(now))
	key := mustKey(t)
	for _, roles := range [][]string{nil, {"access"}, {"zeta", "alpha", "mid"}, {"ädmin", "日本"}} {
		want := &Identity{Kind: KindUser, ClusterName: "example", Username: "alice@example.com", Roles: roles,
			Traits: map[string][]string{"db_users": {"alice"}}, LoginIP: "127.0.0.1",
			Route: &Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "alice", DBName: "app"}}
		cert, err := user.Sign(SignRequest{PublicKey: key.Public(), Identity: *want, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		got, err := IdentityFromCertificate(cert)
		if err != nil {
			t.Fatal(err)
		}
		want.Expires = now.Add(time.Hour)
		if !got.Equal(want) {
			t.Fatalf("roles %q: got %+v, want %+v", roles, got, want)
		}
		if cert.Subject.CommonName != "alice@example.com" || !reflect.DeepEqual(cert.Subject.Organization, nilIfEmpty(roles)) {
			t.Fatalf("subject %v, want CN=alice@example.com O=%q in order", cert.Subject, roles)
		}
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestIdentityEqual(t *testing.T) {
	base := func() *Identity {
		return &Identity{Kind: KindUser, ClusterName: "c", Username: "u", Roles: []string{"a", "b"},
			Traits: map[string][]string{"t": {"1", "2"}}, Route: &Route{DBUser: "x"}, Expires: time.Unix(100, 0)}
	}
	if !base().Equal(base()) {
		t.Fatal("identical identities are not equal")
	}
	var nilID *Identity
	if !nilID.Equal(nil) || base().Equal(nil) || nilID.Equal(base()) {
		t.Fatal("nil handling is wrong")
	}
	a, b := base(), base()
	a.Expires = a.Expires.In(time.FixedZone("x", 3600))
	if !a.Equal(b) {
		t.Fatal("same instant in another zone is not equal")
	}
	a, b = &Identity{Roles: []string{}, Traits: map[string][]string{}}, &Identity{}
	if !a.Equal(b) {
		t.Fatal("empty and nil roles/traits are not equal")
	}
	for name, change := range map[string]func(*Identity){
		"kind":        func(id *Identity) { id.Kind = KindHost },
		"cluster":     func(id *Identity) { id.ClusterName = "d" },
		"username":    func(id *Identity) { id.Username = "v" },
		"role order":  func(id *Identity) { id.Roles = []string{"b", "a"} },
		"value order": func(id *Identity) { id.Traits["t"] = []string{"2", "1"} },
		"trait name":  func(id *Identity) { id.Traits = map[string][]string{"s": {"1", "2"}} },
		"no route":    func(id *Identity) { id.Route = nil },
		"route":       func(id *Identity) { id.Route.DBName = "y" },
		"login ip":    func(id *Identity) { id.LoginIP = "1.1.1.1" },
		"expires":     func(id *Identity) { id.Expires = id.Expires.Add(time.Second) },
	} {
		id := base()
		change(id)
		if id.Equal(base()) || base().Equal(id) {
			t.Errorf("%s: changed identity is still equal", name)
		}
	}
}

// Every way of damaging a valid encoding must be refused, not misread.
func TestDecodeIdentityRefusesCorruption(t *testing.T) {
	full := &Identity{Kind: KindSession, ClusterName: "c", LoginIP: "10.0.0.1",
		Traits: map[string][]string{"a": {"1", "2"}, "b": {"x"}}, Route: &Route{ServiceName: "s", Protocol: "p", DBUser: "u", DBName: "n"}}
	ext, err := EncodeIdentityExtension(full)
	if err != nil {
		t.Fatal(err)
	}
	good := ext.Value

	t.Run("truncated", func(t *testing.T) {
		for n := 0; n < len(good); n++ {
			if _, err := decodeIdentity(good[:n]); err == nil {
				t.Fatalf("decoded the first %d of %d bytes", n, len(good))
			}
		}
	})
	t.Run("trailing", func(t *testing.T) {
		for _, tail := range [][]byte{{0}, {0x30, 0x00}, good} {
			if _, err := decodeIdentity(append(append([]byte(nil), good...), tail...)); err == nil {
				t.Fatalf("accepted %d trailing bytes", len(tail))
			}
		}
	})
	t.Run("bit flips", func(t *testing.T) {
		// A flipped bit either fails to decode or decodes to a different,
		// canonical identity; it never decodes back to the same identity.
		for i := range good {
			for bit := range 8 {
				b := append([]byte(nil), good...)
				b[i] ^= 1 << bit
				id, err := decodeIdentity(b)
				if err != nil {
					continue
				}
				if id.Equal(full) {
					t.Fatalf("flipping bit %d of byte %d decodes to the same identity", bit, i)
				}
				if again, err := encodeIdentity(id); err != nil || !bytes.Equal(again, b) {
					t.Fatalf("flipping bit %d of byte %d decodes to a non-canonical identity", bit, i)
				}
			}
		}
	})

	type tw = traitWire
	raw := func(s string) asn1.RawValue { return asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(s)} }
	route, _ := asn1.Marshal(routeWire{Service: "s"})
	for name, w := range map[string]any{
		"version 0":          identityWire{Version: 0, Kind: "user"},
		"version 2":          identityWire{Version: 2, Kind: "user"},
		"unknown kind":       identityWire{Version: 1, Kind: "root"},
		"empty trait name":   identityWire{Version: 1, Kind: "user", Traits: []tw{{Name: ""}}},
		"duplicate trait":    identityWire{Version: 1, Kind: "user", Traits: []tw{{Name: "a"}, {Name: "a"}}},
		"unsorted traits":    identityWire{Version: 1, Kind: "user", Traits: []tw{{Name: "b"}, {Name: "a"}}},
		"invalid utf8 value": identityWire{Version: 1, Kind: "user", Traits: []tw{{Name: "a", Values: []asn1.RawValue{raw("\xff")}}}},
		"printable value":    identityWire{Version: 1, Kind: "user", Traits: []tw{{Name: "a", Values: []asn1.RawValue{{Tag: asn1.TagPrintableString, Bytes: []byte("x")}}}}},
		"integer value":      identityWire{Version: 1, Kind: "user", Traits: []tw{{Name: "a", Values: []asn1.RawValue{{Tag: asn1.TagInteger, Bytes: []byte{1}}}}}},
		"route wrong tag":    identityWire{Version: 1, Kind: "user", Route: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: route}},
		"route implicit":     identityWire{Version: 1, Kind: "user", Route: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: route[2:]}},
		"extra element": struct {
			Version                int
			Kind, Cluster, LoginIP string `asn1:"utf8"`
			Traits                 []tw
			Extra                  int
		}{Version: 1, Kind: "user", Extra: 7},
		"extra after route": struct {
			Version                int
			Kind, Cluster, LoginIP string `asn1:"utf8"`
			Traits                 []tw
			Route                  asn1.RawValue
			Extra                  int
		}{Version: 1, Kind: "user", Route: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: route}, Extra: 7},
		"printable kind": struct {
			Version          int
			Kind             string `asn1:"printable"`
			Cluster, LoginIP string `asn1:"utf8"`
			Traits           []tw
		}{Version: 1, Kind: "user"},
		"missing traits": struct {
			Version                int
			Kind, Cluster, LoginIP string `asn1:"utf8"`
		}{Version: 1, Kind: "user"},
	} {
		der, err := asn1.Marshal(w)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if id, err := decodeIdentity(der); err == nil {
			t.Errorf("%s: decoded to %+v, want an error", name, id)
		}
	}

	if _, err := decodeIdentity(make([]byte, MaxIdentityExtensionSize+1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized extension: err = %v, want a size error", err)
	}
}

func TestEncodeIdentityRefusesBadInput(t *testing.T) {
	big := strings.Repeat("x", MaxIdentityExtensionSize)
	for name, id := range map[string]*Identity{
		"nil":                nil,
		"no kind":            {},
		"unknown kind":       {Kind: "admin"},
		"invalid cluster":    {Kind: KindUser, ClusterName: "\xff"},
		"empty trait name":   {Kind: KindUser, Traits: map[string][]string{"": {"a"}}},
		"invalid trait name": {Kind: KindUser, Traits: map[string][]string{"\xc3": {"a"}}},
		"invalid value":      {Kind: KindUser, Traits: map[string][]string{"a": {"\xc3"}}},
		"invalid route":      {Kind: KindUser, Route: &Route{DBName: "\xc3"}},
		"too big":            {Kind: KindUser, Traits: map[string][]string{"a": {big}}},
	} {
		if _, err := EncodeIdentityExtension(id); err == nil {
			t.Errorf("%s: encoded, want an error", name)
		}
	}
}

func TestIdentityFromCertificateRefusesBadSubjects(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	user := newTestAuthority(t, UserCA, "c", fixedClock(now))
	ext, err := EncodeIdentityExtension(&Identity{Kind: KindUser, ClusterName: "c"})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(tmpl *x509.Certificate) *x509.Certificate {
		t.Helper()
		tmpl.NotBefore, tmpl.NotAfter = now, now.Add(time.Hour)
		c, err := user.issue(tmpl, mustKey(t).Public())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for name, tmpl := range map[string]*x509.Certificate{
		"no extension": {Subject: (&Identity{Username: "alice"}).Subject()},
		"empty CN":     {ExtraExtensions: []pkix.Extension{ext}},
		"two CNs":      {Subject: pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidCommonName, Value: "alice"}, {Type: oidCommonName, Value: "bob"}}}, ExtraExtensions: []pkix.Extension{ext}},
		"control char": {Subject: (&Identity{Username: "al\nice"}).Subject(), ExtraExtensions: []pkix.Extension{ext}},
		"critical":     {Subject: (&Identity{Username: "alice"}).Subject(), ExtraExtensions: []pkix.Extension{{Id: ext.Id, Critical: true, Value: ext.Value}}},
		"empty role":   {Subject: (&Identity{Username: "alice", Roles: []string{"a", ""}}).Subject(), ExtraExtensions: []pkix.Extension{ext}},
	} {
		cert := sign(tmpl)
		_, err := IdentityFromCertificate(cert)
		if !IsBadIdentity(err) {
			t.Errorf("%s: err = %v, want a bad identity error", name, err)
		}
	}
	if _, err := IdentityFromCertificate(nil); !IsBadIdentity(err) {
		t.Errorf("nil certificate: err = %v, want a bad identity error", err)
	}
}
