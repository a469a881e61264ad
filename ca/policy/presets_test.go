package policy

import (
	"slices"
	"testing"
)

func TestPresetRolesValidateAndAreFresh(t *testing.T) {
	roles := PresetRoles()
	var names []string
	for _, r := range roles {
		if err := r.Validate(); err != nil {
			t.Errorf("preset %s: %v", r.Metadata.Name, err)
		}
		names = append(names, r.Metadata.Name)
	}
	if want := []string{PresetAccess, PresetEditor, PresetAuditor}; !slices.Equal(names, want) {
		t.Errorf("PresetRoles names = %q, want %q", names, want)
	}
	roles[0].Spec.Allow.DBUsers[0] = "root"
	roles[1].Spec.Allow.Rules[0].Verbs[0] = "changed"
	again := PresetRoles()
	if again[0].Spec.Allow.DBUsers[0] != "{{internal.db_users}}" || again[1].Spec.Allow.Rules[0].Verbs[0] != VerbList {
		t.Error("changing a returned preset changed later presets")
	}
	if _, ok := PresetRole("nope"); ok {
		t.Error(`PresetRole("nope") found a role`)
	}
}

func TestPresetAccess(t *testing.T) {
	c := NewAccessChecker(testRoles(t, PresetAccess), map[string][]string{TraitDBUsers: {"alice"}, TraitDBNames: {"app"}})
	for _, db := range []Database{dbDev, dbProd, dbBare} {
		if !c.CanListDatabase(db) {
			t.Errorf("access cannot list %s", db.Name)
		}
		if err := c.CheckDatabaseAccess(db, "alice", "app"); err != nil {
			t.Errorf("access on %s: %v", db.Name, err)
		}
	}
	if err := c.CheckDatabaseAccess(dbDev, "postgres", "app"); err == nil {
		t.Error("access allowed a db user outside the traits")
	}
	for _, res := range Resources() {
		for _, verb := range Verbs() {
			if err := c.CheckRule(res, verb); err == nil {
				t.Errorf("access may %s %s", verb, res)
			}
		}
	}
}

func TestPresetEditorAndAuditor(t *testing.T) {
	editor := NewAccessChecker(testRoles(t, PresetEditor), map[string][]string{TraitDBUsers: {"alice"}})
	auditor := NewAccessChecker(testRoles(t, PresetAuditor), nil)
	for _, res := range Resources() {
		for _, verb := range Verbs() {
			wantEditor := res != ResourceAudit
			if got := editor.CheckRule(res, verb) == nil; got != wantEditor {
				t.Errorf("editor %s %s: allowed = %v, want %v", verb, res, got, wantEditor)
			}
			wantAuditor := (res == ResourceAudit || res == ResourceDB) && (verb == VerbList || verb == VerbRead)
			if got := auditor.CheckRule(res, verb) == nil; got != wantAuditor {
				t.Errorf("auditor %s %s: allowed = %v, want %v", verb, res, got, wantAuditor)
			}
		}
	}
	for name, c := range map[string]*AccessChecker{"editor": editor, "auditor": auditor} {
		if c.CanListDatabase(dbDev) || c.CheckDatabaseAccess(dbDev, "alice", "") == nil {
			t.Errorf("%s grants database access", name)
		}
	}
}
