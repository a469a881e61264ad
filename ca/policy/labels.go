package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"gopkg.in/yaml.v3"
)

// Labels selects databases by label: key -> accepted values. In YAML and on
// input in JSON a value is one string or a list of strings; YAML output
// writes a single value as a string, JSON output always writes lists.
type Labels map[string][]string

// MarshalYAML implements yaml.Marshaler: keys sorted, one value as a
// string, several as a flow list ([a, b]).
func (l Labels) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range slices.Sorted(maps.Keys(l)) {
		n.Content = append(n.Content, stringNode(k))
		vs := l[k]
		if len(vs) == 1 {
			n.Content = append(n.Content, stringNode(vs[0]))
			continue
		}
		list := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, v := range vs {
			list.Content = append(list.Content, stringNode(v))
		}
		n.Content = append(n.Content, list)
	}
	return n, nil
}

func stringNode(s string) *yaml.Node {
	n := &yaml.Node{}
	n.SetString(s)
	return n
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *Labels) UnmarshalYAML(n *yaml.Node) error {
	v, p := labelsFromNode(n)
	if p != nil {
		return fmt.Errorf("line %d: %s", p.line, p.reason)
	}
	*l = v
	return nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (l *Labels) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("policy: db_labels must be an object of label keys to a value or a list of values: %w", err)
	}
	if raw == nil {
		*l = nil
		return nil
	}
	out := make(Labels, len(raw))
	for k, r := range raw {
		var one string
		if err := json.Unmarshal(r, &one); err == nil {
			out[k] = []string{one}
			continue
		}
		var many []string
		if err := json.Unmarshal(r, &many); err != nil {
			return fmt.Errorf("policy: db_labels value for %s must be a string or a list of strings", quoteShort(k))
		}
		out[k] = many
	}
	*l = out
	return nil
}

// nodeProblem locates a problem inside a YAML node that decodes itself.
type nodeProblem struct {
	line   int
	field  string // relative to the node, e.g. "env" or "env[1]"; "" for the node itself
	reason string
}

// labelsFromNode decodes a db_labels mapping.
func labelsFromNode(n *yaml.Node) (Labels, *nodeProblem) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, &nodeProblem{line: n.Line, reason: `expected a mapping of label keys to a value or a list of values, like {env: prod} or {"*": "*"}`}
	}
	out := make(Labels, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, &nodeProblem{line: k.Line, reason: "label keys must be plain strings"}
		}
		if _, dup := out[k.Value]; dup {
			return nil, &nodeProblem{line: k.Line, reason: fmt.Sprintf("label key %s appears twice", quoteShort(k.Value))}
		}
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag != "!!null":
			out[k.Value] = []string{v.Value}
		case v.Kind == yaml.SequenceNode:
			vals := make([]string, 0, len(v.Content))
			for j, c := range v.Content {
				if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
					return nil, &nodeProblem{line: c.Line, field: fmt.Sprintf("%s[%d]", k.Value, j), reason: "expected a single label value"}
				}
				vals = append(vals, c.Value)
			}
			out[k.Value] = vals
		default:
			return nil, &nodeProblem{line: v.Line, field: k.Value, reason: `expected a label value or a list of values; use "*" to accept any value`}
		}
	}
	return out, nil
}

// labelsMatch reports whether a database with the given labels matches the
// selector (already expanded). Every key of sel must match; the key "*"
// matches every database when its values hold "*". An empty selector matches
// nothing; callers decide what an absent selector means.
func labelsMatch(sel Labels, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, vals := range sel {
		if k == Wildcard {
			if !containsString(vals, Wildcard) {
				return false
			}
			continue
		}
		v, ok := labels[k]
		if !ok || !matchAny(vals, v) {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
