package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Database describes a database for matching against roles.
type Database struct {
	Name     string            // service name, e.g. "pg1"
	Protocol string            // "postgres" or "mysql"
	Labels   map[string]string // e.g. {"env": "prod"}
}

// AccessChecker answers access questions for one identity: its roles with
// their templates expanded against its traits. It is immutable and safe for
// concurrent use.
type AccessChecker struct {
	roles []checkedRole
}

type checkedRole struct {
	name    string
	options RoleOptions
	allow   checkedConditions
	deny    checkedConditions
}

// checkedConditions is an allow or deny block with its values expanded.
// The lists* fields record whether the role itself lists the field, before
// expansion: a template that expands to nothing must not change what kind
// of deny a block is.
type checkedConditions struct {
	labels      Labels
	users       []string
	names       []string
	rules       []Rule
	listsLabels bool
	listsUsers  bool
	listsNames  bool
}

// NewAccessChecker expands roles against the user's traits (nil roles are
// skipped; traits may be nil). The roles should have passed
// [Role.Validate]; a malformed template that slipped through matches
// nothing in an allow block and everything in a deny block.
func NewAccessChecker(roles []*Role, traits map[string][]string) *AccessChecker {
	c := &AccessChecker{roles: make([]checkedRole, 0, len(roles))}
	for _, r := range roles {
		if r == nil {
			continue
		}
		c.roles = append(c.roles, checkedRole{
			name:    r.Metadata.Name,
			options: r.Spec.Options,
			allow:   checkConditionsFor(&r.Spec.Allow, traits, ""),
			deny:    checkConditionsFor(&r.Spec.Deny, traits, Wildcard),
		})
	}
	return c
}

func checkConditionsFor(rc *RoleConditions, traits map[string][]string, onMalformed string) checkedConditions {
	c := checkedConditions{
		users:       expandValues(rc.DBUsers, traits, onMalformed),
		names:       expandValues(rc.DBNames, traits, onMalformed),
		rules:       rc.clone().Rules,
		listsLabels: len(rc.DBLabels) > 0,
		listsUsers:  len(rc.DBUsers) > 0,
		listsNames:  len(rc.DBNames) > 0,
	}
	if c.listsLabels {
		c.labels = make(Labels, len(rc.DBLabels))
		for k, vals := range rc.DBLabels {
			if k == Wildcard && onMalformed != "" && !slices.Equal(vals, []string{Wildcard}) {
				vals = []string{Wildcard} // a broken "*" key in a deny block fails closed
			}
			c.labels[k] = expandValues(vals, traits, onMalformed)
		}
	}
	return c
}

// deniesWhole reports whether a deny block refuses the whole database.
func (d *checkedConditions) deniesWhole(db Database) bool {
	return d.listsLabels && !d.listsUsers && !d.listsNames && labelsMatch(d.labels, db.Labels)
}

// appliesTo reports whether a deny block has any effect on db.
func (d *checkedConditions) appliesTo(db Database) bool {
	if !d.listsLabels {
		return d.listsUsers || d.listsNames
	}
	return labelsMatch(d.labels, db.Labels)
}

// RoleNames returns the names of the checker's roles, in order.
func (c *AccessChecker) RoleNames() []string {
	names := make([]string, len(c.roles))
	for i, r := range c.roles {
		names[i] = r.name
	}
	return names
}

// CheckDatabaseAccess reports whether a session on db as dbUser, opening
// dbName, is allowed: some single role's allow block must match db's labels,
// dbUser and dbName (an empty dbName skips the name check: MySQL sessions may
// have no default database), and no deny block may match (see the package
// documentation for deny semantics). It returns nil or an
// [*AccessDeniedError].
func (c *AccessChecker) CheckDatabaseAccess(db Database, dbUser, dbName string) error {
	denied := func(role, reason string) error {
		return &AccessDeniedError{Database: db.Name, DBUser: dbUser, DBName: dbName, Role: role, Reason: reason}
	}
	if !c.allowsLabels(db) {
		return denied("", c.noRoleReason())
	}
	if dbUser == "" {
		if role, ok := c.wholeDenial(db); ok {
			return denied(role, fmt.Sprintf("role %q denies database %q", role, db.Name))
		}
		if users := c.AllowedDBUsers(db); len(users) > 0 {
			return denied("", "no db user was given; choose one of: "+quoteList(users))
		}
		return denied("", "no db user was given, and no role allows any db user on this database; ask an administrator to grant you db users")
	}
	if role, reason := c.denial(db, dbUser, dbName); reason != "" {
		return denied(role, reason)
	}
	var userOK, nameOK bool
	for i := range c.roles {
		a := &c.roles[i].allow
		if !labelsMatch(a.labels, db.Labels) {
			continue
		}
		u := matchAny(a.users, dbUser)
		n := dbName == "" || matchAny(a.names, dbName)
		if u && n {
			return nil
		}
		userOK = userOK || u
		nameOK = nameOK || n
	}
	switch {
	case !userOK:
		if users := c.AllowedDBUsers(db); len(users) > 0 {
			return denied("", fmt.Sprintf("no role allows db user %q on database %q (allowed: %s)", dbUser, db.Name, quoteList(users)))
		}
		return denied("", fmt.Sprintf("no role allows any db user on database %q; ask an administrator to grant you db users", db.Name))
	case !nameOK:
		if names := c.AllowedDBNames(db); len(names) > 0 {
			return denied("", fmt.Sprintf("no role allows db name %q on database %q (allowed: %s)", dbName, db.Name, quoteList(names)))
		}
		return denied("", fmt.Sprintf("no role allows any db name on database %q; ask an administrator to grant you db names", db.Name))
	default:
		return denied("", fmt.Sprintf("no single role allows both db user %q and db name %q on database %q; ask an administrator for a role that does", dbUser, dbName, db.Name))
	}
}

// noRoleReason explains that no role's db_labels match a database.
func (c *AccessChecker) noRoleReason() string {
	if len(c.roles) == 0 {
		return "you have no roles; ask an administrator to assign you one"
	}
	return fmt.Sprintf("none of your roles (%s) allow this database; ask an administrator for a role whose db_labels match it", quoteList(c.RoleNames()))
}

// denial returns the first deny block that refuses the session.
func (c *AccessChecker) denial(db Database, dbUser, dbName string) (role, reason string) {
	for i := range c.roles {
		r := &c.roles[i]
		d := &r.deny
		if !d.appliesTo(db) {
			continue
		}
		if !d.listsUsers && !d.listsNames {
			return r.name, fmt.Sprintf("role %q denies database %q", r.name, db.Name)
		}
		if d.listsUsers && matchAny(d.users, dbUser) {
			return r.name, fmt.Sprintf("role %q denies db user %q", r.name, dbUser)
		}
		if !d.listsNames || len(d.names) == 0 {
			continue
		}
		switch {
		case dbName == "" && containsString(d.names, Wildcard):
			return r.name, fmt.Sprintf("role %q denies every db name on database %q", r.name, db.Name)
		case dbName == "":
			return r.name, fmt.Sprintf("role %q denies some db names, so a db name is required; name the database to open", r.name)
		case matchAny(d.names, dbName):
			return r.name, fmt.Sprintf("role %q denies db name %q", r.name, dbName)
		}
	}
	return "", ""
}

// allowsLabels reports whether some role's allow block matches db's labels.
func (c *AccessChecker) allowsLabels(db Database) bool {
	for i := range c.roles {
		if labelsMatch(c.roles[i].allow.labels, db.Labels) {
			return true
		}
	}
	return false
}

// wholeDenial returns the first role whose deny block refuses all of db.
func (c *AccessChecker) wholeDenial(db Database) (string, bool) {
	for i := range c.roles {
		if c.roles[i].deny.deniesWhole(db) {
			return c.roles[i].name, true
		}
	}
	return "", false
}

// deniesWhole reports whether some deny block refuses all of db.
func (c *AccessChecker) deniesWhole(db Database) bool {
	_, ok := c.wholeDenial(db)
	return ok
}

// CanListDatabase reports whether db should appear in the user's database
// list: some role's db_labels allow it and no deny block refuses the whole
// database. It says nothing about which db users or names will be allowed.
func (c *AccessChecker) CanListDatabase(db Database) bool {
	return c.allowsLabels(db) && !c.deniesWhole(db)
}

// AllowedDBUsers returns the db users the roles allow on db, expanded,
// deduplicated and sorted, without those a deny block names. "*" in the
// result means any db user (except those denied). It is for listings and
// messages; CheckDatabaseAccess is the authority.
func (c *AccessChecker) AllowedDBUsers(db Database) []string {
	return c.allowedValues(db,
		func(x *checkedConditions) []string { return x.users },
		func(x *checkedConditions) bool { return x.listsUsers })
}

// AllowedDBNames is like [AccessChecker.AllowedDBUsers] for db names.
func (c *AccessChecker) AllowedDBNames(db Database) []string {
	return c.allowedValues(db,
		func(x *checkedConditions) []string { return x.names },
		func(x *checkedConditions) bool { return x.listsNames })
}

func (c *AccessChecker) allowedValues(db Database, values func(*checkedConditions) []string, lists func(*checkedConditions) bool) []string {
	if c.deniesWhole(db) {
		return nil
	}
	denied := func(v string) bool {
		for i := range c.roles {
			d := &c.roles[i].deny
			if lists(d) && d.appliesTo(db) && matchAny(values(d), v) {
				return true
			}
		}
		return false
	}
	var out []string
	for i := range c.roles {
		a := &c.roles[i].allow
		if !labelsMatch(a.labels, db.Labels) {
			continue
		}
		for _, v := range values(a) {
			if !slices.Contains(out, v) && !denied(v) {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// CheckRule reports whether the roles allow verb on a cluster resource
// (see the Resource and Verb constants). A matching deny rule always wins;
// "*" in a rule matches any resource or verb. It returns nil or an
// [*AccessDeniedError].
func (c *AccessChecker) CheckRule(resource, verb string) error {
	denied := func(role, reason string) error {
		return &AccessDeniedError{Resource: resource, Verb: verb, Role: role, Reason: reason}
	}
	if resource == "" || verb == "" {
		return denied("", "no resource or verb was given")
	}
	for i := range c.roles {
		for _, rule := range c.roles[i].deny.rules {
			if ruleMatches(rule, resource, verb) {
				return denied(c.roles[i].name, fmt.Sprintf("role %q denies %s on %s", c.roles[i].name, verb, resource))
			}
		}
	}
	for i := range c.roles {
		for _, rule := range c.roles[i].allow.rules {
			if ruleMatches(rule, resource, verb) {
				return nil
			}
		}
	}
	return denied("", fmt.Sprintf("no role allows %s on %s; ask an administrator for a role with a rule that does", verb, resource))
}

func ruleMatches(r Rule, resource, verb string) bool {
	return matchAny(r.Resources, resource) && matchAny(r.Verbs, verb)
}

// MaxSessionTTL returns the smallest max_session_ttl set by any role, or def
// when no role sets one.
func (c *AccessChecker) MaxSessionTTL(def time.Duration) time.Duration {
	if ttl := c.minDuration(func(o RoleOptions) Duration { return o.MaxSessionTTL }); ttl > 0 {
		return ttl
	}
	return def
}

// ClientIdleTimeout returns the smallest client_idle_timeout set by any role,
// or 0 (no idle timeout) when none sets one.
func (c *AccessChecker) ClientIdleTimeout() time.Duration {
	return c.minDuration(func(o RoleOptions) Duration { return o.ClientIdleTimeout })
}

func (c *AccessChecker) minDuration(get func(RoleOptions) Duration) time.Duration {
	var min time.Duration
	for i := range c.roles {
		if d := get(c.roles[i].options).Std(); d > 0 && (min == 0 || d < min) {
			min = d
		}
	}
	return min
}

// DisconnectExpiredCert reports whether any role asks for sessions to end
// when their certificate expires.
func (c *AccessChecker) DisconnectExpiredCert() bool {
	for i := range c.roles {
		if c.roles[i].options.DisconnectExpiredCert {
			return true
		}
	}
	return false
}

// String describes the checker for logs: its role names.
func (c *AccessChecker) String() string {
	return "roles [" + strings.Join(c.RoleNames(), ", ") + "]"
}
