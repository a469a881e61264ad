package policy

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParseRole checks that ParseRole never panics, that whatever it accepts
// is valid, survives a YAML and a JSON round trip unchanged, and can be
// used by an AccessChecker.
func FuzzParseRole(f *testing.F) {
	f.Add([]byte(fullRoleYAML))
	if out, err := MarshalRoleYAML(PresetRoles()...); err == nil {
		f.Add(out)
	}
	for _, src := range testRoleYAML {
		f.Add([]byte(src))
	}
	f.Add([]byte("kind: role\nversion: v1\nmetadata: {name: a}\nspec: {allow: {db_users: [\"{{bogus\"]}}\n"))
	f.Add([]byte("kind: role\nversion: v1\nmetadata: {name: a}\nspec: {options: {max_session_ttl: 12x}}\n"))
	f.Add([]byte("kind: role\nversion: v1\nmetadata: {name: a}\nspec: &a {allow: *a}\n"))
	f.Add([]byte(`{"kind":"role","version":"v1","metadata":{"name":"j"},"spec":{"allow":{"db_labels":{"env":["a","b"]}}}}`))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("kind: [role\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRole(data)
		if err != nil {
			if !IsValidationError(err) {
				t.Fatalf("ParseRole error is not a *ValidationError: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRole accepted a role that Validate refuses: %v", err)
		}
		out, err := MarshalRoleYAML(r)
		if err != nil {
			t.Fatalf("MarshalRoleYAML: %v", err)
		}
		back, err := ParseRole(out)
		if err != nil {
			t.Fatalf("ParseRole(MarshalRoleYAML(r)) = %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normalize(back), normalize(r)) {
			t.Fatalf("YAML round trip changed the role:\n%s", out)
		}
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		var fromJSON Role
		if err := json.Unmarshal(j, &fromJSON); err != nil {
			t.Fatalf("json.Unmarshal: %v\n%s", err, j)
		}
		if !reflect.DeepEqual(normalize(&fromJSON), normalize(r)) {
			t.Fatalf("JSON round trip changed the role:\n%s", j)
		}
		c := NewAccessChecker([]*Role{r}, map[string][]string{"db_users": {"u"}, "db_names": {"n"}})
		db := Database{Name: "d", Labels: map[string]string{"env": "prod"}}
		_ = c.CheckDatabaseAccess(db, "u", "n")
		_ = c.CheckDatabaseAccess(db, "", "")
		_ = c.CanListDatabase(db)
		_ = c.CheckRule(ResourceDB, VerbList)
	})
}

// normalize makes empty and nil collections compare equal: the encoders
// drop empty lists and maps, which is not a change in meaning.
func normalize(r *Role) *Role {
	c := r.Clone()
	for _, rc := range []*RoleConditions{&c.Spec.Allow, &c.Spec.Deny} {
		if len(rc.DBLabels) == 0 {
			rc.DBLabels = nil
		}
		if len(rc.DBNames) == 0 {
			rc.DBNames = nil
		}
		if len(rc.DBUsers) == 0 {
			rc.DBUsers = nil
		}
		if len(rc.Rules) == 0 {
			rc.Rules = nil
		}
	}
	return c
}
