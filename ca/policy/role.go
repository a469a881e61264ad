package policy

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Role resource kind and version.
const (
	KindRole  = "role"
	VersionV1 = "v1"
)

// Cluster resources that rules grant verbs on.
const (
	ResourceUser    = "user"
	ResourceRole    = "role"
	ResourceToken   = "token" // join tokens
	ResourceLock    = "lock"
	ResourceDB      = "db"      // the database inventory
	ResourceAudit   = "audit"   // the audit log, including statements
	ResourceCluster = "cluster" // cluster-wide settings and certificate authorities
)

// Verbs that rules grant.
const (
	VerbList   = "list"
	VerbRead   = "read"
	VerbCreate = "create"
	VerbUpdate = "update"
	VerbDelete = "delete"
)

// Resources returns the cluster resources rules may name (besides "*").
func Resources() []string {
	return []string{ResourceUser, ResourceRole, ResourceToken, ResourceLock, ResourceDB, ResourceAudit, ResourceCluster}
}

// Verbs returns the verbs rules may name (besides "*").
func Verbs() []string {
	return []string{VerbList, VerbRead, VerbCreate, VerbUpdate, VerbDelete}
}

// Role is a named set of permissions and session options.
type Role struct {
	Kind     string   `json:"kind" yaml:"kind"`       // always "role"
	Version  string   `json:"version" yaml:"version"` // always "v1"
	Metadata Metadata `json:"metadata" yaml:"metadata"`
	Spec     RoleSpec `json:"spec" yaml:"spec"`
}

// Metadata names a resource.
type Metadata struct {
	Name        string `json:"name" yaml:"name"` // see ValidateName
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
}

// RoleSpec holds a role's options and its allow and deny conditions.
type RoleSpec struct {
	Options RoleOptions    `json:"options,omitzero" yaml:"options,omitempty"`
	Allow   RoleConditions `json:"allow,omitzero" yaml:"allow,omitempty"`
	Deny    RoleConditions `json:"deny,omitzero" yaml:"deny,omitempty"`
}

// RoleOptions are session settings. Zero values mean "not set by this role".
type RoleOptions struct {
	// MaxSessionTTL caps the lifetime of the certificates a user gets.
	MaxSessionTTL Duration `json:"max_session_ttl,omitempty" yaml:"max_session_ttl,omitempty"`
	// ClientIdleTimeout closes database sessions idle for this long.
	ClientIdleTimeout Duration `json:"client_idle_timeout,omitempty" yaml:"client_idle_timeout,omitempty"`
	// DisconnectExpiredCert closes database sessions when the certificate
	// they started with expires.
	DisconnectExpiredCert bool `json:"disconnect_expired_cert,omitempty" yaml:"disconnect_expired_cert,omitempty"`
}

// RoleConditions is an allow or deny block. Values may be literals, "*" or
// trait templates (see the package documentation).
type RoleConditions struct {
	DBLabels Labels   `json:"db_labels,omitempty" yaml:"db_labels,omitempty"`
	DBNames  []string `json:"db_names,omitempty" yaml:"db_names,omitempty,flow"`
	DBUsers  []string `json:"db_users,omitempty" yaml:"db_users,omitempty,flow"`
	Rules    []Rule   `json:"rules,omitempty" yaml:"rules,omitempty"`
}

// Rule grants (or, in a deny block, refuses) verbs on cluster resources.
type Rule struct {
	Resources []string `json:"resources" yaml:"resources,flow"`
	Verbs     []string `json:"verbs" yaml:"verbs,flow"`
}

// Validate checks a role decoded from JSON or built in code, with the same
// rules as [ParseRole]. It returns a [*ValidationError].
func (r *Role) Validate() error {
	if r == nil {
		return &ValidationError{Kind: "role", Reason: "the role is missing"}
	}
	fail := func(field, reason string) error {
		return &ValidationError{Kind: "role", Name: r.Metadata.Name, Field: field, Reason: reason}
	}
	switch r.Kind {
	case KindRole:
	case "":
		return fail("kind", "kind is missing; set kind: role")
	default:
		return fail("kind", fmt.Sprintf("kind %s is not %q", quoteShort(r.Kind), KindRole))
	}
	switch r.Version {
	case VersionV1:
	case "":
		return fail("version", "version is missing; set version: v1")
	default:
		return fail("version", fmt.Sprintf("version %s is not supported; use v1", quoteShort(r.Version)))
	}
	if reason := nameProblem(r.Metadata.Name); reason != "" {
		return fail("metadata.name", reason)
	}
	if r.Spec.Options.MaxSessionTTL < 0 {
		return fail("spec.options.max_session_ttl", "durations must be zero or more")
	}
	if r.Spec.Options.ClientIdleTimeout < 0 {
		return fail("spec.options.client_idle_timeout", "durations must be zero or more")
	}
	if field, reason := checkConditions("spec.allow", &r.Spec.Allow); reason != "" {
		return fail(field, reason)
	}
	if field, reason := checkConditions("spec.deny", &r.Spec.Deny); reason != "" {
		return fail(field, reason)
	}
	return nil
}

// checkConditions validates an allow or deny block, returning the field and
// reason of the first problem.
func checkConditions(path string, c *RoleConditions) (field, reason string) {
	for _, k := range slices.Sorted(maps.Keys(c.DBLabels)) {
		vals := c.DBLabels[k]
		f := path + ".db_labels." + labelPathKey(k)
		switch {
		case k == "":
			return f, "label keys cannot be empty"
		case strings.Contains(k, "{{") || strings.Contains(k, "}}"):
			return f, "label keys cannot be templates; put templates in label values"
		case k == Wildcard && (len(vals) != 1 || vals[0] != Wildcard):
			return f, `the key "*" only takes the value "*" (every database)`
		case k != Wildcard && strings.Contains(k, Wildcard):
			return f, `label keys hold no partial wildcards; only the whole key "*" is a wildcard`
		case len(vals) == 0:
			return f, `the label lists no values; use "*" to accept any value`
		}
		for i, v := range vals {
			if r := checkValue(v); r != "" {
				return fmt.Sprintf("%s[%d]", f, i), r
			}
		}
	}
	for _, list := range []struct {
		name   string
		values []string
	}{{"db_names", c.DBNames}, {"db_users", c.DBUsers}} {
		for i, v := range list.values {
			if r := checkValue(v); r != "" {
				return fmt.Sprintf("%s.%s[%d]", path, list.name, i), r
			}
		}
	}
	for i, rule := range c.Rules {
		f := fmt.Sprintf("%s.rules[%d]", path, i)
		if len(rule.Resources) == 0 {
			return f + ".resources", `list at least one resource, or "*"`
		}
		if len(rule.Verbs) == 0 {
			return f + ".verbs", `list at least one verb, or "*"`
		}
		for j, res := range rule.Resources {
			if res != Wildcard && !slices.Contains(Resources(), res) {
				return fmt.Sprintf("%s.resources[%d]", f, j), fmt.Sprintf("unknown resource %s; use one of %s or \"*\"", quoteShort(res), strings.Join(Resources(), ", "))
			}
		}
		for j, verb := range rule.Verbs {
			if verb != Wildcard && !slices.Contains(Verbs(), verb) {
				return fmt.Sprintf("%s.verbs[%d]", f, j), fmt.Sprintf("unknown verb %s; use one of %s or \"*\"", quoteShort(verb), strings.Join(Verbs(), ", "))
			}
		}
	}
	return "", ""
}

// labelPathKey writes a label key in a field path, quoting it when it is not
// a plain word.
func labelPathKey(k string) string {
	if k != "" && validTraitKey(k) {
		return k
	}
	return quoteShort(k)
}

// Clone returns a deep copy of r.
func (r *Role) Clone() *Role {
	if r == nil {
		return nil
	}
	c := *r
	c.Spec.Allow = r.Spec.Allow.clone()
	c.Spec.Deny = r.Spec.Deny.clone()
	return &c
}

func (c RoleConditions) clone() RoleConditions {
	out := RoleConditions{
		DBNames: slices.Clone(c.DBNames),
		DBUsers: slices.Clone(c.DBUsers),
	}
	if c.DBLabels != nil {
		out.DBLabels = make(Labels, len(c.DBLabels))
		for k, v := range c.DBLabels {
			out.DBLabels[k] = slices.Clone(v)
		}
	}
	if c.Rules != nil {
		out.Rules = make([]Rule, len(c.Rules))
		for i, r := range c.Rules {
			out.Rules[i] = Rule{Resources: slices.Clone(r.Resources), Verbs: slices.Clone(r.Verbs)}
		}
	}
	return out
}

// MarshalRoleYAML writes roles as YAML documents separated by "---", indented
// by two spaces, in the form [ParseRoles] reads back: the output of
// `pctl roles get` and `pctl roles ls`.
func MarshalRoleYAML(roles ...*Role) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, r := range roles {
		if r == nil {
			continue
		}
		if err := enc.Encode(r); err != nil {
			return nil, fmt.Errorf("policy: writing role %s as YAML: %w", quoteShort(r.Metadata.Name), err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("policy: writing roles as YAML: %w", err)
	}
	return buf.Bytes(), nil
}
