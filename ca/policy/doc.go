// Package policy holds Portcullis access policy: roles written in YAML, the
// trait templates inside them, the access checker that the database agent and
// the Auth service consult, the preset roles, and locks.
//
// The package depends on nothing else in Portcullis: callers pass plain
// values (a user's role list, traits and name) taken from whatever identity
// they hold.
//
// # Roles
//
// A role is a YAML (or JSON) resource:
//
//	kind: role
//	version: v1
//	metadata:
//	  name: access
//	  description: every database, as the db users and names in the user's traits
//	spec:
//	  options:
//	    max_session_ttl: 12h
//	    client_idle_timeout: 30m
//	    disconnect_expired_cert: true
//	  allow:
//	    db_labels: {"*": "*"}
//	    db_names: ["{{internal.db_names}}"]
//	    db_users: ["{{internal.db_users}}"]
//	    rules:
//	      - resources: [user, role, token, lock, db, audit, cluster]
//	        verbs: [list, read, create, update, delete]
//	  deny:
//	    db_users: [root, postgres]
//
// [ParseRole] decodes strictly: an unknown field is refused with its path
// and line, durations must carry a unit, verbs and resources must be known
// (or "*"), and malformed templates are refused. Roles stored as JSON decode
// with encoding/json into the same types and should be checked with
// [Role.Validate]. [MarshalRoleYAML] prints roles in the same form.
//
// # Values and trait templates
//
// Every entry of db_users, db_names and every db_labels value is one of:
//
//   - a literal, such as "alice" or "prod";
//   - the wildcard "*", which matches anything (only the whole value is a
//     wildcard: "app_*" is refused, not treated as a pattern);
//   - a trait template, {{internal.KEY}} or {{external.KEY}}, optionally with
//     a literal prefix and suffix ("{{internal.team}}-ro"). Both namespaces
//     read the same map: the user's traits. Each trait value yields one value;
//     a trait that is missing or empty yields nothing, so such a template
//     contributes nothing. Unknown keys are allowed (they are simply empty).
//     An expanded value is matched exactly like a literal, so a trait value
//     "*" acts as a wildcard (as in Teleport): set traits with that in mind.
//
// # Labels
//
// db_labels maps a label key to one value or a list of values. A database
// matches when, for every key listed, the database has that label with one
// of the listed values ("*" matches any value of a present label). The
// special entry "*": "*" matches every database, labelled or not. An empty
// or absent db_labels in an allow block matches no database. A label whose
// values all expand to nothing matches no database, in allow and deny blocks
// alike.
//
// # Database access
//
// [AccessChecker.CheckDatabaseAccess] allows a session (database, db user,
// db name) when some single role's allow block matches the database's
// labels, the db user and the db name, and no deny block matches. An empty
// db name skips the allow-side name check: MySQL sessions may start without
// a default database.
//
// Deny blocks are evaluated first and always win:
//
//   - a deny block with no db_labels, db_users or db_names has no effect on
//     database access (it may still hold rules);
//   - a deny block applies to a database when its db_labels match it or when
//     it has no db_labels;
//   - if it lists db_users or db_names, it denies a session whose db user OR
//     db name matches (wildcards allowed). Whether it "lists" them is decided
//     before template expansion, so a template that expands to nothing never
//     turns a user deny into a whole-database deny. Because a session without
//     a db name could switch to a denied database, a deny block whose db_names
//     expand to at least one value also refuses sessions without a db name;
//   - if it lists neither, it denies the whole database, which also hides it
//     from [AccessChecker.CanListDatabase].
//
// Refusals are [*AccessDeniedError] values with one sentence a person can act
// on; they mention only the caller's own roles and allowed values.
//
// # Cluster rules
//
// Rules grant verbs (list, read, create, update, delete) on cluster resources
// (user, role, token, lock, db, audit, cluster). [AccessChecker.CheckRule]
// allows a verb on a resource when an allow rule matches and no deny rule
// matches; "*" matches any verb or resource.
//
// # Options
//
// The session options combine across roles in the strict direction: the
// smallest max_session_ttl and client_idle_timeout set by any role, and
// disconnect_expired_cert if any role sets it.
//
// # Presets
//
// [PresetRoles] returns access (every database, db users and names from the
// db_users and db_names traits, no cluster rules), editor (every verb on
// user, role, token, lock, db and cluster, but not audit: the audit log holds
// statements, the database counterpart of Teleport's session recordings) and
// auditor (list and read on audit and on the db inventory). None sets session
// options, so the operator's defaults apply.
//
// # Locks
//
// A [Lock] targets a user, a role, or both (then a user must match both).
// [CheckLocks] returns a [*LockError] for the first unexpired lock matching an
// identity.
//
// # Names
//
// Users, roles and locks share one naming rule, checked by [ValidateName]:
// 1 to 64 characters from lowercase letters, digits, '-', '_', '.' and '@',
// starting with a letter or digit.
package policy
