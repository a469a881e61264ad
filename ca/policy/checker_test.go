package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// testRoleYAML holds the roles the checker tests combine, by name.
var testRoleYAML = map[string]string{
	"dev": `
kind: role
version: v1
metadata: {name: dev}
spec:
  allow:
    db_labels: {env: [dev, staging]}
    db_users: [alice, "{{internal.db_users}}"]
    db_names: ["*"]
`,
	"prod-ro": `
kind: role
version: v1
metadata: {name: prod-ro}
spec:
  allow:
    db_labels: {env: prod, team: "{{external.team}}"}
    db_users: [reader]
    db_names: [app]
`,
	"any-label-prod": `
kind: role
version: v1
metadata: {name: any-label-prod}
spec:
  allow:
    db_labels: {env: "*"}
    db_users: [viewer]
`,
	"no-root": `
kind: role
version: v1
metadata: {name: no-root}
spec:
  deny:
    db_users: [root, postgres]
`,
	"no-secrets": `
kind: role
version: v1
metadata: {name: no-secrets}
spec:
  deny:
    db_names: [secrets]
`,
	"no-prod": `
kind: role
version: v1
metadata: {name: no-prod}
spec:
  deny:
    db_labels: {env: prod}
`,
	"no-prod-admin": `
kind: role
version: v1
metadata: {name: no-prod-admin}
spec:
  deny:
    db_labels: {env: prod}
    db_users: [admin]
`,
	"deny-rules-only": `
kind: role
version: v1
metadata: {name: deny-rules-only}
spec:
  deny:
    rules: [{resources: [audit], verbs: ["*"]}]
`,
	"deny-blocked-trait": `
kind: role
version: v1
metadata: {name: deny-blocked-trait}
spec:
  deny:
    db_users: ["{{internal.blocked}}"]
`,
	"deny-all-names": `
kind: role
version: v1
metadata: {name: deny-all-names}
spec:
  deny:
    db_names: ["*"]
`,
	"user-only": `
kind: role
version: v1
metadata: {name: user-only}
spec:
  allow:
    db_labels: {"*": "*"}
    db_users: [bob]
`,
	"name-only": `
kind: role
version: v1
metadata: {name: name-only}
spec:
  allow:
    db_labels: {"*": "*"}
    db_names: [shop]
    db_users: [carol]
`,
	"admin": `
kind: role
version: v1
metadata: {name: admin}
spec:
  allow:
    rules:
      - resources: ["*"]
        verbs: ["*"]
`,
	"no-role-delete": `
kind: role
version: v1
metadata: {name: no-role-delete}
spec:
  deny:
    rules:
      - resources: [role]
        verbs: [delete, update]
`,
	"lock-reader": `
kind: role
version: v1
metadata: {name: lock-reader}
spec:
  allow:
    rules:
      - resources: [lock, user]
        verbs: [list, read]
`,
}

func testRoles(t testing.TB, names ...string) []*Role {
	t.Helper()
	var roles []*Role
	for _, n := range names {
		if n == PresetAccess || n == PresetEditor || n == PresetAuditor {
			r, _ := PresetRole(n)
			roles = append(roles, r)
			continue
		}
		src, ok := testRoleYAML[n]
		if !ok {
			t.Fatalf("no test role %q", n)
		}
		r, err := ParseRole([]byte(src))
		if err != nil {
			t.Fatalf("test role %q: %v", n, err)
		}
		roles = append(roles, r)
	}
	return roles
}

var (
	dbDev     = Database{Name: "pg-dev", Protocol: "postgres", Labels: map[string]string{"env": "dev"}}
	dbStaging = Database{Name: "my-staging", Protocol: "mysql", Labels: map[string]string{"env": "staging"}}
	dbProd    = Database{Name: "pg-prod", Protocol: "postgres", Labels: map[string]string{"env": "prod", "team": "payments"}}
	dbBare    = Database{Name: "bare", Protocol: "postgres"}
)

func TestCheckDatabaseAccess(t *testing.T) {
	aliceTraits := map[string][]string{"db_users": {"alice", "reporting"}, "db_names": {"app", "analytics"}, "team": {"payments"}}
	tests := []struct {
		name     string
		roles    []string
		traits   map[string][]string
		db       Database
		user     string
		dbName   string
		wantRole string // deny role expected in the error; "" for "no role allows"
		wantMsg  string // substring of the error; "" means access is allowed
	}{
		// Preset access: every database, users and names from traits.
		{"access preset allows trait user and name", []string{"access"}, aliceTraits, dbProd, "alice", "app", "", ""},
		{"access preset allows second trait value", []string{"access"}, aliceTraits, dbBare, "reporting", "analytics", "", ""},
		{"access preset refuses other user", []string{"access"}, aliceTraits, dbProd, "bob", "app", "",
			`access to database "pg-prod" as db user "bob" with db name "app" denied: no role allows db user "bob" on database "pg-prod" (allowed: alice, reporting)`},
		{"access preset refuses other name", []string{"access"}, aliceTraits, dbDev, "alice", "billing", "",
			`no role allows db name "billing" on database "pg-dev" (allowed: analytics, app)`},
		{"access preset empty db name skips name check", []string{"access"}, aliceTraits, dbDev, "alice", "", "", ""},
		{"access preset with no traits allows nobody", []string{"access"}, nil, dbDev, "alice", "app", "",
			`no role allows any db user on database "pg-dev"; ask an administrator to grant you db users`},
		{"access preset with users but no names", []string{"access"}, map[string][]string{"db_users": {"alice"}}, dbDev, "alice", "app", "",
			`no role allows any db name on database "pg-dev"`},
		{"access preset with users but no names, no db name", []string{"access"}, map[string][]string{"db_users": {"alice"}}, dbDev, "alice", "", "", ""},
		{"empty trait values contribute nothing", []string{"access"}, map[string][]string{"db_users": {""}}, dbDev, "", "", "",
			"no db user was given, and no role allows any db user"},

		// Labels.
		{"label list first value", []string{"dev"}, nil, dbDev, "alice", "anything", "", ""},
		{"label list second value", []string{"dev"}, nil, dbStaging, "alice", "", "", ""},
		{"label value mismatch", []string{"dev"}, nil, dbProd, "alice", "", "",
			`access to database "pg-prod" as db user "alice" denied: none of your roles (dev) allow this database; ask an administrator for a role whose db_labels match it`},
		{"missing label", []string{"dev"}, nil, dbBare, "alice", "", "", "none of your roles (dev) allow this database"},
		{"label value wildcard needs the key", []string{"any-label-prod"}, nil, dbBare, "viewer", "", "", "none of your roles"},
		{"label value wildcard", []string{"any-label-prod"}, nil, dbStaging, "viewer", "", "", ""},
		{"label value from trait", []string{"prod-ro"}, aliceTraits, dbProd, "reader", "app", "", ""},
		{"label value from other trait value", []string{"prod-ro"}, map[string][]string{"team": {"search"}}, dbProd, "reader", "app", "", "none of your roles (prod-ro)"},
		{"label template with no trait matches nothing", []string{"prod-ro"}, nil, dbProd, "reader", "app", "", "none of your roles"},
		{"no roles", nil, nil, dbDev, "alice", "", "", "you have no roles; ask an administrator to assign you one"},

		// Templates inside db_users mixed with literals.
		{"literal and template users: trait", []string{"dev"}, aliceTraits, dbDev, "reporting", "", "", ""},
		{"literal and template users: other", []string{"dev"}, aliceTraits, dbDev, "mallory", "", "",
			`no role allows db user "mallory" on database "pg-dev" (allowed: alice, reporting)`},

		// Multiple roles: one must satisfy labels, user and name together.
		{"second role allows", []string{"dev", "prod-ro"}, aliceTraits, dbProd, "reader", "app", "", ""},
		{"allowed users come from matching roles only", []string{"dev", "prod-ro"}, aliceTraits, dbProd, "alice", "app", "",
			`no role allows db user "alice" on database "pg-prod" (allowed: reader)`},
		{"user and name from different roles", []string{"user-only", "name-only"}, nil, dbDev, "bob", "shop", "",
			`no single role allows both db user "bob" and db name "shop" on database "pg-dev"`},
		{"user-only role with no db name", []string{"user-only", "name-only"}, nil, dbDev, "bob", "", "", ""},

		// Deny wins.
		{"deny db user", []string{"access", "no-root"}, map[string][]string{"db_users": {"root", "alice"}}, dbDev, "root", "", "no-root",
			`access to database "pg-dev" as db user "root" denied: role "no-root" denies db user "root"`},
		{"deny db user leaves others", []string{"access", "no-root"}, map[string][]string{"db_users": {"root", "alice"}}, dbDev, "alice", "", "", ""},
		{"deny db name", []string{"dev", "no-secrets"}, nil, dbDev, "alice", "secrets", "no-secrets", `role "no-secrets" denies db name "secrets"`},
		{"deny db name allows other names", []string{"dev", "no-secrets"}, nil, dbDev, "alice", "app", "", ""},
		{"deny db names requires a db name", []string{"dev", "no-secrets"}, nil, dbDev, "alice", "", "no-secrets",
			`role "no-secrets" denies some db names, so a db name is required`},
		{"deny every db name", []string{"dev", "deny-all-names"}, nil, dbDev, "alice", "", "deny-all-names", `role "deny-all-names" denies every db name on database "pg-dev"`},
		{"deny whole database by labels", []string{"access", "no-prod"}, aliceTraits, dbProd, "alice", "app", "no-prod", `role "no-prod" denies database "pg-prod"`},
		{"deny whole database with no db user", []string{"access", "no-prod"}, aliceTraits, dbProd, "", "", "no-prod", `role "no-prod" denies database "pg-prod"`},
		{"labels deny leaves other databases", []string{"access", "no-prod"}, aliceTraits, dbDev, "alice", "app", "", ""},
		{"labels+user deny denies user there", []string{"dev", "any-label-prod", "no-prod-admin"}, map[string][]string{"db_users": {"admin"}}, dbProd, "viewer", "", "", ""},
		{"labels+user deny: user elsewhere", []string{"dev", "no-prod-admin"}, map[string][]string{"db_users": {"admin"}}, dbDev, "admin", "", "", ""},
		{"labels+user deny: user in prod", []string{"access", "no-prod-admin"}, map[string][]string{"db_users": {"admin"}}, dbProd, "admin", "", "no-prod-admin", `role "no-prod-admin" denies db user "admin"`},
		{"deny block with only rules has no effect", []string{"dev", "deny-rules-only"}, nil, dbDev, "alice", "", "", ""},
		{"deny template expanding to nothing denies nothing", []string{"dev", "deny-blocked-trait"}, nil, dbDev, "alice", "x", "", ""},
		{"deny template expanding to a value", []string{"dev", "deny-blocked-trait"}, map[string][]string{"blocked": {"alice"}}, dbDev, "alice", "", "deny-blocked-trait", `role "deny-blocked-trait" denies db user "alice"`},
		{"deny order does not matter", []string{"no-root", "access"}, map[string][]string{"db_users": {"root"}}, dbDev, "root", "", "no-root", "denies db user"},

		// No db user.
		{"no db user lists choices", []string{"access"}, aliceTraits, dbDev, "", "", "", "no db user was given; choose one of: alice, reporting"},
		{"no db user hides denied choices", []string{"access", "no-root"}, map[string][]string{"db_users": {"root", "alice"}}, dbDev, "", "", "", "choose one of: alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewAccessChecker(testRoles(t, tt.roles...), tt.traits)
			err := c.CheckDatabaseAccess(tt.db, tt.user, tt.dbName)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckDatabaseAccess(%s, %q, %q) = %v, want nil", tt.db.Name, tt.user, tt.dbName, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckDatabaseAccess(%s, %q, %q) = nil, want an error containing %q", tt.db.Name, tt.user, tt.dbName, tt.wantMsg)
			}
			if !IsAccessDenied(err) || !IsAccessDenied(fmt.Errorf("wrapped: %w", err)) {
				t.Errorf("IsAccessDenied(%v) = false", err)
			}
			var ade *AccessDeniedError
			errors.As(err, &ade)
			if ade.Role != tt.wantRole {
				t.Errorf("Role = %q, want %q", ade.Role, tt.wantRole)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestCheckDatabaseAccessNeverLeaksOtherValues(t *testing.T) {
	// Traits of other users never reach a checker; the error may only list
	// values this identity's own roles allow on this database.
	c := NewAccessChecker(testRoles(t, "dev", "prod-ro"), map[string][]string{"db_users": {"alice"}, "team": {"payments"}})
	err := c.CheckDatabaseAccess(dbProd, "bob", "app")
	if err == nil {
		t.Fatal("access allowed, want denied")
	}
	if strings.Contains(err.Error(), "alice") {
		t.Errorf("error %q lists a db user allowed only on other databases", err)
	}
}

func TestCanListDatabase(t *testing.T) {
	traits := map[string][]string{"db_users": {"alice"}}
	tests := []struct {
		roles []string
		db    Database
		want  bool
	}{
		{[]string{"access"}, dbBare, true},
		{[]string{"access"}, dbProd, true},
		{[]string{"dev"}, dbStaging, true},
		{[]string{"dev"}, dbProd, false},
		{[]string{"access", "no-prod"}, dbProd, false},
		{[]string{"access", "no-prod"}, dbDev, true},
		{[]string{"access", "no-prod-admin"}, dbProd, true}, // denies a user, not the database
		{[]string{"access", "no-root"}, dbProd, true},
		{[]string{"editor"}, dbDev, false},
		{nil, dbDev, false},
	}
	for _, tt := range tests {
		c := NewAccessChecker(testRoles(t, tt.roles...), traits)
		if got := c.CanListDatabase(tt.db); got != tt.want {
			t.Errorf("roles %v: CanListDatabase(%s) = %v, want %v", tt.roles, tt.db.Name, got, tt.want)
		}
	}
}

func TestAllowedDBUsersAndNames(t *testing.T) {
	traits := map[string][]string{"db_users": {"root", "alice", "alice"}, "db_names": {"secrets", "app"}}
	c := NewAccessChecker(testRoles(t, "access", "dev", "no-root", "no-secrets"), traits)
	if got, want := c.AllowedDBUsers(dbDev), []string{"alice"}; !slices.Equal(got, want) {
		t.Errorf("AllowedDBUsers(dev) = %q, want %q", got, want)
	}
	if got, want := c.AllowedDBNames(dbDev), []string{"*", "app"}; !slices.Equal(got, want) {
		t.Errorf("AllowedDBNames(dev) = %q, want %q", got, want)
	}
	if got, want := c.AllowedDBNames(dbProd), []string{"app"}; !slices.Equal(got, want) {
		t.Errorf("AllowedDBNames(prod) = %q, want %q", got, want)
	}
	c = NewAccessChecker(testRoles(t, "access", "no-prod"), traits)
	if got := c.AllowedDBUsers(dbProd); len(got) != 0 {
		t.Errorf("AllowedDBUsers on a denied database = %q, want none", got)
	}
}

func TestCheckRule(t *testing.T) {
	tests := []struct {
		roles    []string
		resource string
		verb     string
		wantRole string
		wantMsg  string // "" means allowed
	}{
		{[]string{"admin"}, ResourceUser, VerbCreate, "", ""},
		{[]string{"admin"}, ResourceAudit, VerbRead, "", ""},
		{[]string{"admin", "no-role-delete"}, ResourceRole, VerbDelete, "no-role-delete", `not allowed to delete role: role "no-role-delete" denies delete on role`},
		{[]string{"admin", "no-role-delete"}, ResourceRole, VerbRead, "", ""},
		{[]string{"admin", "deny-rules-only"}, ResourceAudit, VerbList, "deny-rules-only", `role "deny-rules-only" denies list on audit`},
		{[]string{"lock-reader"}, ResourceLock, VerbList, "", ""},
		{[]string{"lock-reader"}, ResourceUser, VerbRead, "", ""},
		{[]string{"lock-reader"}, ResourceLock, VerbCreate, "", "not allowed to create lock: no role allows create on lock; ask an administrator for a role with a rule that does"},
		{[]string{"access"}, ResourceUser, VerbList, "", "no role allows list on user"},
		{[]string{"admin"}, "", VerbList, "", "no resource or verb was given"},
		{nil, ResourceDB, VerbList, "", "no role allows list on db"},
	}
	for _, tt := range tests {
		c := NewAccessChecker(testRoles(t, tt.roles...), nil)
		err := c.CheckRule(tt.resource, tt.verb)
		if tt.wantMsg == "" {
			if err != nil {
				t.Errorf("roles %v: CheckRule(%q, %q) = %v, want nil", tt.roles, tt.resource, tt.verb, err)
			}
			continue
		}
		var ade *AccessDeniedError
		if !errors.As(err, &ade) {
			t.Errorf("roles %v: CheckRule(%q, %q) = %v, want an *AccessDeniedError", tt.roles, tt.resource, tt.verb, err)
			continue
		}
		if ade.Role != tt.wantRole || !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("roles %v: CheckRule(%q, %q) = %q (role %q), want %q (role %q)", tt.roles, tt.resource, tt.verb, err, ade.Role, tt.wantMsg, tt.wantRole)
		}
	}
}

func TestSessionOptions(t *testing.T) {
	role := func(name, ttl, idle string, disconnect bool) *Role {
		r := &Role{Kind: KindRole, Version: VersionV1, Metadata: Metadata{Name: name}}
		if ttl != "" {
			d, _ := time.ParseDuration(ttl)
			r.Spec.Options.MaxSessionTTL = Duration(d)
		}
		if idle != "" {
			d, _ := time.ParseDuration(idle)
			r.Spec.Options.ClientIdleTimeout = Duration(d)
		}
		r.Spec.Options.DisconnectExpiredCert = disconnect
		return r
	}
	c := NewAccessChecker([]*Role{role("a", "", "", false), role("b", "", "", false)}, nil)
	if got := c.MaxSessionTTL(12 * time.Hour); got != 12*time.Hour {
		t.Errorf("MaxSessionTTL with no role setting it = %v, want the default 12h", got)
	}
	if got := c.ClientIdleTimeout(); got != 0 {
		t.Errorf("ClientIdleTimeout with no role setting it = %v, want 0", got)
	}
	if c.DisconnectExpiredCert() {
		t.Error("DisconnectExpiredCert with no role setting it = true")
	}

	c = NewAccessChecker([]*Role{role("a", "8h", "", false), role("b", "", "30m", true), role("c", "30h", "1h", false)}, nil)
	if got := c.MaxSessionTTL(12 * time.Hour); got != 8*time.Hour {
		t.Errorf("MaxSessionTTL = %v, want 8h", got)
	}
	if got := c.MaxSessionTTL(time.Hour); got != 8*time.Hour {
		t.Errorf("MaxSessionTTL(1h) = %v, want 8h (the roles' value, not the default)", got)
	}
	if got := c.ClientIdleTimeout(); got != 30*time.Minute {
		t.Errorf("ClientIdleTimeout = %v, want 30m", got)
	}
	if !c.DisconnectExpiredCert() {
		t.Error("DisconnectExpiredCert = false, want true (role b sets it)")
	}
}

func TestCheckerIgnoresNilRolesAndKeepsOrder(t *testing.T) {
	roles := testRoles(t, "dev", "no-root")
	c := NewAccessChecker([]*Role{roles[0], nil, roles[1]}, nil)
	if got, want := c.RoleNames(), []string{"dev", "no-root"}; !slices.Equal(got, want) {
		t.Errorf("RoleNames() = %q, want %q", got, want)
	}
	if got, want := c.String(), "roles [dev, no-root]"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestCheckerIsolatedFromRoleChanges(t *testing.T) {
	roles := testRoles(t, "lock-reader")
	c := NewAccessChecker(roles, nil)
	roles[0].Spec.Allow.Rules[0].Verbs[0] = VerbDelete
	if err := c.CheckRule(ResourceLock, VerbList); err != nil {
		t.Errorf("changing a role after NewAccessChecker changed the checker: %v", err)
	}
}

func TestUnvalidatedRolesFailClosed(t *testing.T) {
	broken := &Role{Metadata: Metadata{Name: "broken"}, Spec: RoleSpec{
		Allow: RoleConditions{DBLabels: Labels{"*": {"*"}}, DBUsers: []string{"{{internal.db_users", "alice"}},
		Deny:  RoleConditions{DBNames: []string{"{{bogus"}},
	}}
	c := NewAccessChecker([]*Role{broken}, map[string][]string{"db_users": {"bob"}})
	if err := c.CheckDatabaseAccess(dbDev, "bob", ""); err == nil {
		t.Error("a malformed allow template granted access")
	}
	if err := c.CheckDatabaseAccess(dbDev, "alice", "app"); err == nil {
		t.Error("a malformed deny template denied nothing")
	}
	noName := &Role{Spec: RoleSpec{Deny: RoleConditions{DBLabels: Labels{"*": {"*"}}}}}
	c = NewAccessChecker(append(testRoles(t, "dev"), noName), nil)
	if err := c.CheckDatabaseAccess(dbDev, "alice", ""); err == nil {
		t.Error("a whole-database deny in a role without a name was ignored")
	}
}
