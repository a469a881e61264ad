package audit

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current encoding")

var (
	goldenTime   = time.Date(2026, 11, 23, 20, 30, 0, 123456789, time.UTC)
	goldenExpiry = time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)
)

func goldenMeta(typ, id string) Metadata {
	return Metadata{Type: typ, ID: id, Time: goldenTime, ClusterName: "example"}
}

// goldenEvents are one or more representative events per type. Code is left
// empty so that the golden files also pin the code each type gets.
func goldenEvents() []struct {
	name  string
	event Event
} {
	return append([]struct {
		name  string
		event Event
	}{
		{"user_login", &UserLogin{
			Metadata:           goldenMeta(TypeUserLogin, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e01"),
			UserMetadata:       UserMetadata{User: "alice", Roles: []string{"access", "editor"}},
			Method:             LoginMethodPasswordTOTP,
			ConnectionMetadata: ConnectionMetadata{ClientAddr: "203.0.113.7:51234"},
			Status:             Status{Success: true},
		}},
		{"user_login_failure", &UserLogin{
			Metadata:           goldenMeta(TypeUserLogin, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e02"),
			UserMetadata:       UserMetadata{User: "mallory"},
			Method:             LoginMethodPassword,
			ConnectionMetadata: ConnectionMetadata{ClientAddr: "198.51.100.9:40000"},
			Status:             Status{Success: false, Error: "invalid user name, password or second factor"},
		}},
		{"cert_create_user", &CertificateCreate{
			Metadata:           goldenMeta(TypeCertCreate, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e03"),
			UserMetadata:       UserMetadata{User: "alice", Roles: []string{"access"}},
			ConnectionMetadata: ConnectionMetadata{ClientAddr: "203.0.113.7:51234"},
			CertType:           CertTypeUser,
			Identity: CertificateIdentity{
				Username: "alice",
				Roles:    []string{"access"},
				Traits:   map[string][]string{"db_names": {"app"}, "db_users": {"alice"}},
				LoginIP:  "203.0.113.7",
			},
			Serial:  "1f2e3d4c5b6a",
			Expires: goldenExpiry,
		}},
		{"cert_create_route", &CertificateCreate{
			Metadata:     goldenMeta(TypeCertCreate, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e04"),
			UserMetadata: UserMetadata{User: "alice", Roles: []string{"access"}},
			CertType:     CertTypeRoute,
			Identity: CertificateIdentity{
				Username: "alice",
				Roles:    []string{"access"},
				Route:    &DatabaseMetadata{DatabaseService: "pg1", DatabaseProtocol: "postgres", DatabaseUser: "alice", DatabaseName: "app"},
			},
			Serial:  "2a",
			Expires: goldenExpiry,
		}},
		{"cert_create_db_server", &CertificateCreate{
			Metadata:     goldenMeta(TypeCertCreate, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e05"),
			UserMetadata: UserMetadata{User: "admin", Roles: []string{"Admin"}},
			CertType:     CertTypeDBServer,
			Identity:     CertificateIdentity{Username: "db.internal", Hosts: []string{"db.internal", "10.0.0.5"}},
			Serial:       "3b",
			Expires:      goldenExpiry,
		}},
		{"user_create", &ResourceChange{
			Metadata:           goldenMeta(TypeUserCreate, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e06"),
			UserMetadata:       UserMetadata{User: "admin", Roles: []string{"Admin"}},
			ConnectionMetadata: ConnectionMetadata{ClientAddr: "127.0.0.1:50000"},
			ResourceMetadata:   ResourceMetadata{Kind: KindUser, Name: "bob"},
			Details:            map[string]string{"roles": "access"},
		}},
		{"role_update", &ResourceChange{
			Metadata:         goldenMeta(TypeRoleUpdate, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e07"),
			UserMetadata:     UserMetadata{User: "admin", Roles: []string{"Admin"}},
			ResourceMetadata: ResourceMetadata{Kind: KindRole, Name: "access"},
		}},
		{"lock_create", &ResourceChange{
			Metadata:         goldenMeta(TypeLockCreate, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e08"),
			UserMetadata:     UserMetadata{User: "admin", Roles: []string{"Admin"}},
			ResourceMetadata: ResourceMetadata{Kind: KindLock, Name: "lock-bob"},
			Expires:          goldenExpiry,
			Details:          map[string]string{"target": "user=bob", "message": "offboarding"},
		}},
		{"join_token_create", &ResourceChange{
			Metadata:         goldenMeta(TypeJoinTokenCreate, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e09"),
			UserMetadata:     UserMetadata{User: "admin", Roles: []string{"Admin"}},
			ResourceMetadata: ResourceMetadata{Kind: KindJoinToken, Name: TokenID("s3cr3t-join-token")},
			Expires:          goldenExpiry,
			Details:          map[string]string{"roles": "Db"},
		}},
		{"agent_join", &AgentJoin{
			Metadata:           goldenMeta(TypeAgentJoin, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e0a"),
			HostID:             "7d8e9f00-1111-4222-8333-444455556666",
			Hostname:           "db-agent-1",
			SystemRole:         "Db",
			TokenID:            TokenID("s3cr3t-join-token"),
			ConnectionMetadata: ConnectionMetadata{ClientAddr: "192.0.2.10:60000"},
			Status:             Status{Success: true},
		}},
		{"agent_join_failure", &AgentJoin{
			Metadata:           goldenMeta(TypeAgentJoin, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e0b"),
			HostID:             "7d8e9f00-1111-4222-8333-444455556667",
			SystemRole:         "Proxy",
			TokenID:            TokenID("wrong-token"),
			ConnectionMetadata: ConnectionMetadata{ClientAddr: "192.0.2.11:60001"},
			Status:             Status{Error: "join token not found or expired; ask an administrator for a new one"},
		}},
		{"access_denied", &AccessDenied{
			Metadata:           goldenMeta(TypeAccessDenied, "5f0c7a52-8f39-4d8b-9d0e-0b1f3a7c2e0c"),
			UserMetadata:       UserMetadata{User: "bob", Roles: []string{"access"}},
			ConnectionMetadata: ConnectionMetadata{ClientAddr: "203.0.113.8:51000"},
			Action:             "roles.update",
			ResourceMetadata:   ResourceMetadata{Kind: KindRole, Name: "Admin"},
			Reason:             `role "access" does not allow updating roles`,
		}},
	}, append(dbGoldenEvents(), mysqlGoldenEvents()...)...)
}

// TestGolden pins the JSON schema of every event type. Run with -update to
// rewrite the files after an intended change, and review the diff: a
// changed or removed key breaks readers.
func TestGolden(t *testing.T) {
	for _, tc := range goldenEvents() {
		t.Run(tc.name, func(t *testing.T) {
			if err := stamp(tc.event, nil, nil); err != nil {
				t.Fatal(err)
			}
			line, err := MarshalEvent(tc.event)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.ContainsAny(line, "\n") {
				t.Fatalf("encoded event spans lines: %s", line)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, line, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("JSON of %s changed:\n got: %s\nwant: %s", tc.name, pretty.Bytes(), want)
			}

			// The golden JSON decodes back into the same event.
			back, err := UnmarshalEvent(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.event) {
				t.Errorf("round trip:\n got: %#v\nwant: %#v", back, tc.event)
			}
		})
	}
}

// TestGoldenCoversEveryStruct makes sure a new event struct gets a golden file.
func TestGoldenCoversEveryStruct(t *testing.T) {
	seen := map[reflect.Type]bool{}
	for _, tc := range goldenEvents() {
		seen[reflect.TypeOf(tc.event)] = true
	}
	for _, e := range append([]Event{&UserLogin{}, &CertificateCreate{}, &ResourceChange{}, &AgentJoin{}, &AccessDenied{}}, append(dbEventStructs(), mysqlEventStructs()...)...) {
		if !seen[reflect.TypeOf(e)] {
			t.Errorf("no golden event for %T", e)
		}
	}
}

func TestCodes(t *testing.T) {
	types := []string{
		TypeUserLogin, TypeCertCreate,
		TypeUserCreate, TypeUserUpdate, TypeUserDelete,
		TypeRoleCreate, TypeRoleUpdate, TypeRoleDelete,
		TypeLockCreate, TypeLockDelete,
		TypeJoinTokenCreate, TypeJoinTokenDelete,
		TypeAgentJoin, TypeAccessDenied,
	}
	seen := map[string]string{}
	for _, typ := range types {
		for _, failed := range []bool{false, true} {
			code := defaultCode(typ, failed)
			if len(code) != 6 || code[0] != 'C' || !strings.ContainsAny(code[5:], "IW") {
				t.Errorf("defaultCode(%q, %v) = %q; want C, four digits, I or W", typ, failed, code)
			}
			if prev, ok := seen[code]; ok && prev != typ {
				t.Errorf("code %s used by both %s and %s", code, prev, typ)
			}
			seen[code] = typ
		}
		if strings.HasPrefix(typ, "db.") {
			t.Errorf("%s uses the reserved db. prefix", typ)
		}
		// Every cluster type decodes into a struct.
		if _, err := UnmarshalEvent([]byte(`{"event":"` + typ + `"}`)); err != nil {
			t.Errorf("UnmarshalEvent(%s): %v", typ, err)
		}
	}
	for _, typ := range []string{TypeUserLogin, TypeAgentJoin} {
		if defaultCode(typ, true) == defaultCode(typ, false) {
			t.Errorf("%s: failure has the same code as success", typ)
		}
	}
	if got := defaultCode("custom.thing", false); got != "" {
		t.Errorf("unknown type got code %q", got)
	}
}

func TestUnmarshalEventErrors(t *testing.T) {
	_, err := UnmarshalEvent([]byte(`{"event":"custom.thing","uid":"x"}`))
	if !IsUnknownEventType(err) {
		t.Errorf("unknown type: got %v, want UnknownEventTypeError", err)
	}
	if _, err := UnmarshalEvent([]byte(`{"event":`)); err == nil || IsUnknownEventType(err) {
		t.Errorf("broken JSON: got %v", err)
	}
	if _, err := UnmarshalEvent([]byte(`{"event":"user.login","success":"yes"}`)); err == nil {
		t.Error("wrong field type: got nil error")
	}
	// Unknown keys (from a newer writer) are ignored.
	e, err := UnmarshalEvent([]byte(`{"event":"user.login","user":"alice","new_key":{"a":1}}`))
	if err != nil || e.(*UserLogin).User != "alice" {
		t.Errorf("unknown key: got %v, %v", e, err)
	}
}

func TestMarshalEventKeepsSQLReadable(t *testing.T) {
	e := &AccessDenied{Metadata: Metadata{Type: TypeAccessDenied}, Reason: "a < b && c > d"}
	line, err := MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(line, []byte(`"a < b && c > d"`)) {
		t.Errorf("HTML-escaped: %s", line)
	}
}

func TestFieldsAccessors(t *testing.T) {
	e := &UserLogin{
		Metadata:     goldenMeta(TypeUserLogin, "id-1"),
		UserMetadata: UserMetadata{User: "alice"},
		Status:       Status{Success: true},
	}
	if err := stamp(e, nil, nil); err != nil {
		t.Fatal(err)
	}
	f, err := ToFields(e)
	if err != nil {
		t.Fatal(err)
	}
	if f.Type() != TypeUserLogin || f.ID() != "id-1" || f.User() != "alice" ||
		f.Code() != CodeUserLogin || f.ClusterName() != "example" || !f.Time().Equal(goldenTime) {
		t.Errorf("accessors: %v", f)
	}
	if f["success"] != true {
		t.Errorf("success = %#v", f["success"])
	}
	if (Fields{"time": "yesterday"}).Time() != (time.Time{}) || (Fields{"user": 3}).User() != "" {
		t.Error("malformed values should read as zero")
	}
}

func TestTokenID(t *testing.T) {
	id := TokenID("s3cr3t-join-token")
	if len(id) != 16 || strings.Contains(id, "s3cr3t") {
		t.Errorf("TokenID = %q", id)
	}
	if id != TokenID("s3cr3t-join-token") || id == TokenID("s3cr3t-join-tokeN") {
		t.Error("TokenID is not a function of the token")
	}
}

func jsonNumber(s string) json.Number { return json.Number(s) }
