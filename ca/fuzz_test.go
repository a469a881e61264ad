package ca

import (
	"bytes"
	"encoding/asn1"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzIdentityExtension/seed-* from the current encoder")

// fuzzSeeds are the committed seed corpus of FuzzIdentityExtension: valid
// encodings of varied identities and a few near misses the decoder must
// refuse.
func fuzzSeeds(t testing.TB) map[string][]byte {
	enc := func(id *Identity) []byte {
		der, err := encodeIdentity(id)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	full := enc(&Identity{Kind: KindSession, ClusterName: "example", LoginIP: "192.0.2.7",
		Traits: map[string][]string{"db_names": {"app", "*"}, "db_users": {"alice"}, "logins": nil},
		Route:  &Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "alice", DBName: "app"}})
	mustMarshal := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return map[string][]byte{
		"valid-minimal": enc(&Identity{Kind: KindUser}),
		"valid-host":    enc(&Identity{Kind: KindHost, ClusterName: "example"}),
		"valid-traits":  enc(&Identity{Kind: KindUser, ClusterName: "example", Traits: map[string][]string{"db_users": {"alice", "bob"}, "db_names": {"app"}}}),
		"valid-route":   enc(&Identity{Kind: KindUser, ClusterName: "example", Route: &Route{ServiceName: "my1", Protocol: "mysql", DBUser: "root", DBName: "shop"}}),
		"valid-unicode": enc(&Identity{Kind: KindUser, ClusterName: "日本", LoginIP: "::1", Traits: map[string][]string{"ключ": {"🚀", ""}}}),
		"valid-full":    full,
		"bad-trailing":  append(append([]byte(nil), full...), 0),
		"bad-truncated": full[:len(full)-3],
		"bad-version-2": mustMarshal(identityWire{Version: 2, Kind: "user"}),
		"bad-duplicate": mustMarshal(identityWire{Version: 1, Kind: "user", Traits: []traitWire{{Name: "a"}, {Name: "a"}}}),
		"bad-utf8": mustMarshal(identityWire{Version: 1, Kind: "user",
			Traits: []traitWire{{Name: "a", Values: []asn1.RawValue{{Tag: asn1.TagUTF8String, Bytes: []byte{0xff}}}}}}),
	}
}

func seedFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

// The committed seeds must match the current encoder (run with
// -update-fuzz-seeds after changing the format), and valid seeds must decode.
func TestFuzzSeedsUpToDate(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzIdentityExtension")
	for name, data := range fuzzSeeds(t) {
		path := filepath.Join(dir, "seed-"+name)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, seedFile(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestFuzzSeedsUpToDate -update-fuzz-seeds)", err)
		}
		if !bytes.Equal(got, seedFile(data)) {
			t.Errorf("%s is stale; run go test -run TestFuzzSeedsUpToDate -update-fuzz-seeds", path)
		}
		_, err = decodeIdentity(data)
		if valid := name[:5] == "valid"; valid != (err == nil) {
			t.Errorf("%s: decode error %v", name, err)
		}
	}
}

// FuzzIdentityExtension: decoding arbitrary bytes never panics, and what
// decodes is canonical: it re-encodes to the same bytes and decodes again to
// the same identity.
func FuzzIdentityExtension(f *testing.F) {
	for _, id := range extensionIdentities() {
		der, err := encodeIdentity(id)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := decodeIdentity(data)
		if err != nil {
			return
		}
		der, err := encodeIdentity(id)
		if err != nil {
			t.Fatalf("decoded %+v but cannot re-encode it: %v", id, err)
		}
		if !bytes.Equal(der, data) {
			t.Fatalf("decoded %+v from a non-canonical encoding", id)
		}
		again, err := decodeIdentity(der)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, id) || !again.Equal(id) {
			t.Fatalf("unstable: %+v then %+v", id, again)
		}
	})
}
