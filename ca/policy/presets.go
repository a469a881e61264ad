package policy

// Names of the preset roles.
const (
	PresetAccess  = "access"  // every database, as the user's db_users / db_names traits
	PresetEditor  = "editor"  // administers the cluster, except the audit log
	PresetAuditor = "auditor" // reads the audit log and the database inventory
)

// PresetRoles returns fresh copies of the preset roles, in the order access,
// editor, auditor. Callers may change them freely.
func PresetRoles() []*Role {
	return []*Role{presetAccess(), presetEditor(), presetAuditor()}
}

// PresetRole returns a fresh copy of the preset role with the given name.
func PresetRole(name string) (*Role, bool) {
	for _, r := range PresetRoles() {
		if r.Metadata.Name == name {
			return r, true
		}
	}
	return nil, false
}

func presetAccess() *Role {
	return &Role{
		Kind:    KindRole,
		Version: VersionV1,
		Metadata: Metadata{
			Name:        PresetAccess,
			Description: "Connect to every database as the db users and db names in the user's db_users and db_names traits.",
		},
		Spec: RoleSpec{
			Allow: RoleConditions{
				DBLabels: Labels{Wildcard: {Wildcard}},
				DBNames:  []string{"{{internal." + TraitDBNames + "}}"},
				DBUsers:  []string{"{{internal." + TraitDBUsers + "}}"},
			},
		},
	}
}

func presetEditor() *Role {
	return &Role{
		Kind:    KindRole,
		Version: VersionV1,
		Metadata: Metadata{
			Name:        PresetEditor,
			Description: "Administer the cluster: users, roles, join tokens, locks, the database inventory and cluster settings. Reading the audit log needs the auditor role.",
		},
		Spec: RoleSpec{
			Allow: RoleConditions{
				Rules: []Rule{{
					Resources: []string{ResourceUser, ResourceRole, ResourceToken, ResourceLock, ResourceDB, ResourceCluster},
					Verbs:     Verbs(),
				}},
			},
		},
	}
}

func presetAuditor() *Role {
	return &Role{
		Kind:    KindRole,
		Version: VersionV1,
		Metadata: Metadata{
			Name:        PresetAuditor,
			Description: "Read the audit log, including the statements run in database sessions, and the database inventory.",
		},
		Spec: RoleSpec{
			Allow: RoleConditions{
				Rules: []Rule{{
					Resources: []string{ResourceAudit, ResourceDB},
					Verbs:     []string{VerbList, VerbRead},
				}},
			},
		},
	}
}
