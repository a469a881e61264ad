package policy

import (
	"fmt"
	"strings"
)

// Wildcard matches any value, label key, verb or resource.
const Wildcard = "*"

// Traits read by the preset roles.
const (
	TraitDBUsers = "db_users" // the db users a person may log in as
	TraitDBNames = "db_names" // the database names a person may open
)

// Template namespaces. Both read the user's traits.
const (
	namespaceInternal = "internal"
	namespaceExternal = "external"
)

// valueExpr is one parsed role value: a literal (including "*") or a trait
// template with an optional literal prefix and suffix.
type valueExpr struct {
	literal string // set when key == ""
	prefix  string
	key     string // trait key; "" for a literal
	suffix  string
}

// parseValue parses one role value. The returned reason, when not "", says
// what is wrong with s in a sentence fragment.
func parseValue(s string) (valueExpr, string) {
	if s == "" {
		return valueExpr{}, "values cannot be empty"
	}
	open := strings.Index(s, "{{")
	if open < 0 {
		if strings.Contains(s, "}}") {
			return valueExpr{}, fmt.Sprintf(`%s has "}}" without an opening "{{"; write a template like "{{internal.db_users}}"`, quoteShort(s))
		}
		return valueExpr{literal: s}, ""
	}
	end := strings.Index(s[open:], "}}")
	if end < 0 {
		return valueExpr{}, fmt.Sprintf(`%s has "{{" without a closing "}}"; write a template like "{{internal.db_users}}"`, quoteShort(s))
	}
	end += open
	inner := strings.TrimSpace(s[open+2 : end])
	prefix, suffix := s[:open], s[end+2:]
	if strings.Contains(suffix, "{{") || strings.Contains(suffix, "}}") || strings.ContainsAny(inner, "{}") {
		return valueExpr{}, fmt.Sprintf("%s holds more than one template; use one template per value", quoteShort(s))
	}
	ns, key, ok := strings.Cut(inner, ".")
	if !ok || (ns != namespaceInternal && ns != namespaceExternal) {
		return valueExpr{}, fmt.Sprintf(`%s is not a known template; write "{{internal.KEY}}" or "{{external.KEY}}"`, quoteShort(s))
	}
	if key == "" || !validTraitKey(key) {
		return valueExpr{}, fmt.Sprintf(`%s does not name a trait; trait keys use letters, digits, '_', '-', '.', ':' and '/'`, quoteShort(s))
	}
	return valueExpr{prefix: prefix, key: key, suffix: suffix}, ""
}

func validTraitKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == ':', c == '/':
		default:
			return false
		}
	}
	return true
}

// checkValue validates one role value, returning a reason or "".
func checkValue(s string) string {
	e, reason := parseValue(s)
	if reason != "" {
		return reason
	}
	if strings.Contains(e.literal+e.prefix+e.suffix, Wildcard) && e.literal != Wildcard {
		return fmt.Sprintf(`%s holds a partial wildcard; only the whole value "*" is a wildcard`, quoteShort(s))
	}
	return ""
}

// expand returns the values e stands for given the user's traits. A template
// whose trait is missing yields nothing, and so do empty trait values.
func (e valueExpr) expand(traits map[string][]string, out []string) []string {
	if e.key == "" {
		return append(out, e.literal)
	}
	for _, v := range traits[e.key] {
		if v == "" {
			continue
		}
		out = append(out, e.prefix+v+e.suffix)
	}
	return out
}

// expandValues expands role values against traits. A malformed value (only
// possible in a role that skipped validation) yields onMalformed when it is
// not "", and nothing otherwise: callers pass "" for allow blocks and "*" for
// deny blocks, so that a broken role fails closed either way.
func expandValues(values []string, traits map[string][]string, onMalformed string) []string {
	var out []string
	for _, s := range values {
		e, reason := parseValue(s)
		if reason != "" {
			if onMalformed != "" {
				out = append(out, onMalformed)
			}
			continue
		}
		out = e.expand(traits, out)
	}
	return out
}

// matchAny reports whether v equals one of values or values holds "*".
func matchAny(values []string, v string) bool {
	for _, x := range values {
		if x == Wildcard || x == v {
			return true
		}
	}
	return false
}
