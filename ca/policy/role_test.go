package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

const fullRoleYAML = `kind: role
version: v1
metadata:
  name: access-plus
  description: "Access with admin rules"
spec:
  options: {max_session_ttl: 12h, client_idle_timeout: 30m, disconnect_expired_cert: true}
  allow:
    db_labels: {"*": "*"}
    db_names: ["{{internal.db_names}}"]
    db_users: ["{{internal.db_users}}", "{{ external.extra_users }}"]
    rules: [{resources: [user, role, token, lock, db, audit, cluster], verbs: [list, read, create, update, delete]}]
  deny:
    db_labels: {env: [prod, "{{internal.frozen_env}}"]}
    db_users: [root]
    rules:
      - resources: ["*"]
        verbs: [delete]
`

func TestParseRoleFull(t *testing.T) {
	r, err := ParseRole([]byte(fullRoleYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := &Role{
		Kind:     KindRole,
		Version:  VersionV1,
		Metadata: Metadata{Name: "access-plus", Description: "Access with admin rules"},
		Spec: RoleSpec{
			Options: RoleOptions{
				MaxSessionTTL:         Duration(12 * time.Hour),
				ClientIdleTimeout:     Duration(30 * time.Minute),
				DisconnectExpiredCert: true,
			},
			Allow: RoleConditions{
				DBLabels: Labels{"*": {"*"}},
				DBNames:  []string{"{{internal.db_names}}"},
				DBUsers:  []string{"{{internal.db_users}}", "{{ external.extra_users }}"},
				Rules: []Rule{{
					Resources: []string{"user", "role", "token", "lock", "db", "audit", "cluster"},
					Verbs:     []string{"list", "read", "create", "update", "delete"},
				}},
			},
			Deny: RoleConditions{
				DBLabels: Labels{"env": {"prod", "{{internal.frozen_env}}"}},
				DBUsers:  []string{"root"},
				Rules:    []Rule{{Resources: []string{"*"}, Verbs: []string{"delete"}}},
			},
		},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("ParseRole =\n%+v\nwant\n%+v", r, want)
	}

	// The templates expand as documented: internal and external read the
	// same traits, whitespace inside the braces is allowed.
	c := NewAccessChecker([]*Role{r}, map[string][]string{"db_users": {"alice"}, "extra_users": {"batch"}, "db_names": {"app"}})
	db := Database{Name: "pg", Labels: map[string]string{"env": "dev"}}
	for _, u := range []string{"alice", "batch"} {
		if err := c.CheckDatabaseAccess(db, u, "app"); err != nil {
			t.Errorf("db user %s: %v", u, err)
		}
	}
	if err := c.CheckRule(ResourceUser, VerbDelete); err == nil {
		t.Error("deny rule on delete did not win over the allow rule")
	}
}

func TestRoleRoundTrips(t *testing.T) {
	orig, err := ParseRole([]byte(fullRoleYAML))
	if err != nil {
		t.Fatal(err)
	}
	roles := append([]*Role{orig}, PresetRoles()...)

	// JSON, as the Auth service stores roles.
	for _, r := range roles {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Role
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: json.Unmarshal: %v", r.Metadata.Name, err)
		}
		if err := back.Validate(); err != nil {
			t.Errorf("%s: Validate after JSON round trip: %v", r.Metadata.Name, err)
		}
		if !reflect.DeepEqual(&back, r) {
			t.Errorf("%s: JSON round trip changed the role:\n%s", r.Metadata.Name, b)
		}
		// JSON is YAML: the strict parser reads it too.
		if p, err := ParseRole(b); err != nil || !reflect.DeepEqual(p, r) {
			t.Errorf("%s: ParseRole(JSON) = %v, %v", r.Metadata.Name, p, err)
		}
	}

	// YAML, as pctl prints roles.
	out, err := MarshalRoleYAML(roles...)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseRoles(out)
	if err != nil {
		t.Fatalf("ParseRoles(MarshalRoleYAML output): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, roles) {
		t.Errorf("YAML round trip changed the roles:\n%s", out)
	}
}

func TestMarshalRoleYAMLOutput(t *testing.T) {
	r, _ := PresetRole(PresetAccess)
	r.Spec.Options.MaxSessionTTL = Duration(90 * time.Minute)
	r.Spec.Deny.DBLabels = Labels{"env": {"prod", "staging"}}
	out, err := MarshalRoleYAML(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `kind: role
version: v1
metadata:
  name: access
  description: Connect to every database as the db users and db names in the user's db_users and db_names traits.
spec:
  options:
    max_session_ttl: 1h30m
  allow:
    db_labels:
      '*': '*'
    db_names: ['{{internal.db_names}}']
    db_users: ['{{internal.db_users}}']
  deny:
    db_labels:
      env: [prod, staging]
`
	if string(out) != want {
		t.Errorf("MarshalRoleYAML =\n%s\nwant\n%s", out, want)
	}
}

func TestParseRoleErrors(t *testing.T) {
	const head = "kind: role\nversion: v1\nmetadata: {name: dev}\n"
	tests := []struct {
		name string
		src  string
		want string // the whole error, or a substring when it starts with "~"
	}{
		{"unknown top-level field", head + "spec: {}\nlabels: {}\n",
			`invalid role "dev" (line 5): unknown field "labels"; known fields: kind, version, metadata, spec`},
		{"unknown option", head + "spec:\n  options:\n    max_ttl: 1h\n",
			`invalid role "dev" (line 6): spec.options: unknown field "max_ttl"; known fields: max_session_ttl, client_idle_timeout, disconnect_expired_cert`},
		{"unknown rule field", head + "spec:\n  allow:\n    rules: [{resources: [user], verb: [list]}]\n",
			`invalid role "dev" (line 6): spec.allow.rules[0]: unknown field "verb"; known fields: resources, verbs`},
		{"unknown metadata field", "kind: role\nversion: v1\nmetadata: {name: dev, labels: {a: b}}\n",
			`~metadata: unknown field "labels"`},
		{"bad duration", head + "spec:\n  options: {max_session_ttl: 12x}\n",
			`invalid role "dev" (line 5): spec.options.max_session_ttl: "12x" is not a duration; write it with units, like "12h", "30m" or "1h30m"`},
		{"duration without unit", head + "spec:\n  options: {client_idle_timeout: 30}\n",
			`~spec.options.client_idle_timeout: "30" is not a duration`},
		{"negative duration", head + "spec:\n  options: {max_session_ttl: -1h}\n",
			`~spec.options.max_session_ttl: "-1h" is negative`},
		{"duration list", head + "spec:\n  options: {max_session_ttl: [1h]}\n",
			`~spec.options.max_session_ttl: expected a duration like "12h"`},
		{"unclosed template", head + "spec:\n  allow:\n    db_users: [\"{{bogus\"]\n",
			`invalid role "dev": spec.allow.db_users[0]: "{{bogus" has "{{" without a closing "}}"; write a template like "{{internal.db_users}}"`},
		{"unknown template namespace", head + "spec:\n  allow:\n    db_names: [\"{{bogus}}\"]\n",
			`~spec.allow.db_names[0]: "{{bogus}}" is not a known template; write "{{internal.KEY}}" or "{{external.KEY}}"`},
		{"template without key", head + "spec:\n  allow:\n    db_names: [\"{{internal.}}\"]\n",
			`~"{{internal.}}" does not name a trait`},
		{"two templates", head + "spec:\n  allow:\n    db_users: [\"{{internal.a}}{{internal.b}}\"]\n",
			`~holds more than one template`},
		{"stray closing braces", head + "spec:\n  deny:\n    db_users: [\"root}}\"]\n",
			`~spec.deny.db_users[0]: "root}}" has "}}" without an opening "{{"`},
		{"template in label value", head + "spec:\n  allow:\n    db_labels: {env: \"{{internal.env\"}\n",
			`~spec.allow.db_labels.env[0]: "{{internal.env" has "{{" without a closing "}}"`},
		{"partial wildcard", head + "spec:\n  allow:\n    db_users: [\"app_*\"]\n",
			`~spec.allow.db_users[0]: "app_*" holds a partial wildcard; only the whole value "*" is a wildcard`},
		{"empty value", head + "spec:\n  allow:\n    db_users: [\"\"]\n",
			`~spec.allow.db_users[0]: values cannot be empty`},
		{"wildcard key with a value", head + "spec:\n  allow:\n    db_labels: {\"*\": prod}\n",
			`~spec.allow.db_labels."*": the key "*" only takes the value "*"`},
		{"label with no values", head + "spec:\n  allow:\n    db_labels: {env: []}\n",
			`~spec.allow.db_labels.env: the label lists no values; use "*" to accept any value`},
		{"label value mapping", head + "spec:\n  allow:\n    db_labels: {env: {a: b}}\n",
			`invalid role "dev" (line 6): spec.allow.db_labels.env: expected a label value or a list of values; use "*" to accept any value`},
		{"labels as list", head + "spec:\n  allow:\n    db_labels: [env]\n",
			`~spec.allow.db_labels: expected a mapping of label keys`},
		{"unknown verb", head + "spec:\n  allow:\n    rules: [{resources: [user], verbs: [list, lsit]}]\n",
			`invalid role "dev": spec.allow.rules[0].verbs[1]: unknown verb "lsit"; use one of list, read, create, update, delete or "*"`},
		{"unknown resource", head + "spec:\n  deny:\n    rules: [{resources: [users], verbs: [list]}]\n",
			`~spec.deny.rules[0].resources[0]: unknown resource "users"; use one of user, role, token, lock, db, audit, cluster or "*"`},
		{"rule without verbs", head + "spec:\n  allow:\n    rules: [{resources: [user]}]\n",
			`~spec.allow.rules[0].verbs: list at least one verb`},
		{"scalar where a list goes", head + "spec:\n  allow:\n    rules: [{resources: [user], verbs: read}]\n",
			`invalid role "dev" (line 6): spec.allow.rules[0].verbs: expected a list, like [a, b]`},
		{"null list entry", head + "spec:\n  deny:\n    db_users: [~]\n",
			`invalid role "dev" (line 6): spec.deny.db_users[0]: list entries cannot be empty`},
		{"string bool", head + "spec:\n  options: {disconnect_expired_cert: \"yes\"}\n",
			`~spec.options.disconnect_expired_cert: expected true or false`},
		{"list where a mapping goes", head + "spec: [a]\n", `~spec: expected a mapping of fields`},
		{"duplicate field", head + "spec: {}\nspec: {}\n", `~field "spec" appears twice`},
		{"alias", head + "spec:\n  allow:\n    db_users: &u [a]\n  deny:\n    db_users: *u\n",
			`~spec.deny.db_users: YAML aliases are not supported in roles`},
		{"missing kind", "version: v1\nmetadata: {name: dev}\n", `invalid role "dev": kind: kind is missing; set kind: role`},
		{"wrong kind", "kind: user\nversion: v1\nmetadata: {name: dev}\n", `~kind: kind "user" is not "role"`},
		{"missing version", "kind: role\nmetadata: {name: dev}\n", `~version: version is missing; set version: v1`},
		{"wrong version", "kind: role\nversion: v7\nmetadata: {name: dev}\n", `~version "v7" is not supported; use v1`},
		{"missing name", "kind: role\nversion: v1\n", `~invalid role: metadata.name: the name is empty; use 1 to 64 characters`},
		{"bad name", "kind: role\nversion: v1\nmetadata: {name: Dev}\n", `~metadata.name: use 1 to 64 characters from lowercase letters`},
		{"not YAML", "kind: [role\n", `~invalid role: the document is not valid YAML: line `},
		{"tab indentation", "kind: role\n\tversion: v1\n", `~the document is not valid YAML`},
		{"scalar document", "hello\n", `invalid role (line 1): a role is a YAML mapping with kind, version, metadata and spec`},
		{"empty", "", `invalid role: the document is empty; write a role with kind, version, metadata and spec`},
		{"only comments", "# nothing\n---\n", `~the document is empty`},
		{"two roles", head + "---\n" + head, `invalid role: the document holds 2 roles; put one role in it`},
		{"too large", head + "# " + strings.Repeat("x", MaxRoleBytes), `~larger than 1048576 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRole([]byte(tt.src))
			if err == nil {
				t.Fatalf("ParseRole succeeded with %+v, want an error", r)
			}
			if !IsValidationError(err) {
				t.Errorf("IsValidationError(%v) = false", err)
			}
			got := err.Error()
			if sub, ok := strings.CutPrefix(tt.want, "~"); ok {
				if !strings.Contains(got, sub) {
					t.Errorf("error = %q\nwant it to contain %q", got, sub)
				}
			} else if got != tt.want {
				t.Errorf("error = %q\nwant       %q", got, tt.want)
			}
		})
	}
}

func TestParseRoleAccepts(t *testing.T) {
	const head = "kind: role\nversion: v1\nmetadata: {name: dev}\n"
	for _, src := range []string{
		head,             // no spec at all
		head + "spec:\n", // empty spec
		head + "spec: {allow: , deny: }\n",
		head + "spec:\n  allow:\n    db_users: [\"{{internal.foo}}\", \"{{external.some-key}}\", \"pre-{{internal.x}}-post\"]\n",
		head + "spec:\n  options: {max_session_ttl: 0}\n",
		head + "spec:\n  allow:\n    db_labels: {env: [dev, \"*\"], \"region\": \"{{external.region}}\"}\n",
		head + "spec:\n  allow:\n    rules: [{resources: [\"*\"], verbs: [\"*\"]}]\n",
		"---\n" + head + "---\n", // empty documents around the role are skipped
	} {
		if _, err := ParseRole([]byte(src)); err != nil {
			t.Errorf("ParseRole(%q) = %v", src, err)
		}
	}
}

func TestParseRoles(t *testing.T) {
	out, err := MarshalRoleYAML(PresetRoles()...)
	if err != nil {
		t.Fatal(err)
	}
	roles, err := ParseRoles(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range roles {
		names = append(names, r.Metadata.Name)
	}
	if got, want := strings.Join(names, ","), "access,editor,auditor"; got != want {
		t.Errorf("ParseRoles names = %s, want %s", got, want)
	}
	bad := string(out) + "---\nkind: role\nversion: v1\nmetadata: {name: x}\nspec: {allow: {verbs: [list]}}\n"
	if _, err := ParseRoles([]byte(bad)); err == nil || !strings.Contains(err.Error(), `invalid role "x"`) {
		t.Errorf("ParseRoles with a bad last role = %v, want an error naming it", err)
	}
}

func TestValidateJSONRole(t *testing.T) {
	tests := []struct {
		json string
		want string
	}{
		{`{"kind":"role","version":"v1","metadata":{"name":"x"},"spec":{"allow":{"db_users":["{{oops"]}}}`, `spec.allow.db_users[0]: "{{oops" has "{{"`},
		{`{"kind":"role","version":"v1","metadata":{"name":"x"},"spec":{"options":{"max_session_ttl":-5}}}`, "negative"},
		{`{"kind":"role","version":"v1","metadata":{"name":"x"},"spec":{"options":{"max_session_ttl":"soon"}}}`, `"soon" is not a duration`},
		{`{"kind":"role","version":"v1","metadata":{"name":"x"},"spec":{"allow":{"db_labels":{"env":5}}}}`, `db_labels value for "env" must be a string or a list`},
		{`{"kind":"role","version":"v1","metadata":{"name":"x"},"spec":{"allow":{"rules":[{"resources":["db"],"verbs":["drop"]}]}}}`, `unknown verb "drop"`},
	}
	for _, tt := range tests {
		var r Role
		err := json.Unmarshal([]byte(tt.json), &r)
		if err == nil {
			err = r.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want it to contain %q", tt.json, err, tt.want)
		}
	}
	var r Role
	if err := json.Unmarshal([]byte(`{"kind":"role","version":"v1","metadata":{"name":"x"},"spec":{"options":{"max_session_ttl":3600000000000},"allow":{"db_labels":{"env":"prod","tier":["a","b"]}}}}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Spec.Options.MaxSessionTTL.Std() != time.Hour {
		t.Errorf("numeric JSON duration = %v, want 1h", r.Spec.Options.MaxSessionTTL)
	}
	if want := (Labels{"env": {"prod"}, "tier": {"a", "b"}}); !reflect.DeepEqual(r.Spec.Allow.DBLabels, want) {
		t.Errorf("JSON labels = %v, want %v", r.Spec.Allow.DBLabels, want)
	}
	var nilRole *Role
	if err := nilRole.Validate(); !IsValidationError(err) {
		t.Errorf("(*Role)(nil).Validate() = %v", err)
	}
}

func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                  "0s",
		12 * time.Hour:                     "12h",
		30 * time.Minute:                   "30m",
		90 * time.Minute:                   "1h30m",
		time.Hour + 10*time.Second:         "1h0m10s",
		45 * time.Second:                   "45s",
		1500 * time.Millisecond:            "1.5s",
		36*time.Hour + 30*time.Minute:      "36h30m",
		10*time.Minute + 30*time.Second:    "10m30s",
		100*time.Hour + 0*time.Minute:      "100h",
		2*time.Hour + 500*time.Millisecond: "2h0m0.5s",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		} else if back, reason := parseDuration(got); reason != "" || back.Std() != d {
			t.Errorf("parseDuration(%q) = %v, %q", got, back, reason)
		}
	}
}

func TestRoleClone(t *testing.T) {
	orig, err := ParseRole([]byte(fullRoleYAML))
	if err != nil {
		t.Fatal(err)
	}
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatal("Clone differs from the original")
	}
	c.Spec.Allow.DBLabels["*"][0] = "x"
	c.Spec.Allow.DBUsers[0] = "x"
	c.Spec.Deny.Rules[0].Verbs[0] = "x"
	if orig.Spec.Allow.DBLabels["*"][0] != "*" || orig.Spec.Allow.DBUsers[0] == "x" || orig.Spec.Deny.Rules[0].Verbs[0] == "x" {
		t.Error("changing the clone changed the original")
	}
	if (*Role)(nil).Clone() != nil {
		t.Error("Clone of nil is not nil")
	}
}
