package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxRoleBytes is the largest role document ParseRole and ParseRoles accept.
const MaxRoleBytes = 1 << 20

// ParseRole decodes and validates one role from YAML (JSON, being YAML, is
// accepted too). Decoding is strict: unknown fields, values of the wrong
// shape, durations without units, unknown verbs or resources and malformed
// templates are refused with a [*ValidationError] naming the field.
func ParseRole(data []byte) (*Role, error) {
	roles, err := ParseRoles(data)
	if err != nil {
		return nil, err
	}
	if len(roles) != 1 {
		return nil, &ValidationError{Kind: "role", Reason: fmt.Sprintf("the document holds %d roles; put one role in it", len(roles))}
	}
	return roles[0], nil
}

// ParseRoles decodes and validates the roles in a YAML stream of documents
// separated by "---", with the rules of [ParseRole]. Empty documents are
// skipped; a stream with no role is an error.
func ParseRoles(data []byte) ([]*Role, error) {
	if len(data) > MaxRoleBytes {
		return nil, &ValidationError{Kind: "role", Reason: fmt.Sprintf("the document is larger than %d bytes", MaxRoleBytes)}
	}
	docs, err := decodeDocuments(data)
	if err != nil {
		return nil, err
	}
	var roles []*Role
	for _, doc := range docs {
		r, err := roleFromDocument(doc)
		if err != nil {
			return nil, err
		}
		roles = append(roles, r)
	}
	if len(roles) == 0 {
		return nil, &ValidationError{Kind: "role", Reason: "the document is empty; write a role with kind, version, metadata and spec"}
	}
	return roles, nil
}

// decodeDocuments parses data into YAML nodes, one per non-empty document.
func decodeDocuments(data []byte) (docs []*yaml.Node, err error) {
	// yaml.v3 has panicked on some malformed input in the past; a parser of
	// administrator input must not take the Auth service down with it.
	defer func() {
		if p := recover(); p != nil {
			docs, err = nil, &ValidationError{Kind: "role", Reason: "the document is not valid YAML"}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, &ValidationError{Kind: "role", Reason: "the document is not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		root := &doc
		if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
			root = doc.Content[0]
		}
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		docs = append(docs, root)
	}
}

// roleFromDocument checks a document's shape, decodes it and validates it.
func roleFromDocument(root *yaml.Node) (*Role, error) {
	c := shapeChecker{name: roleNameOf(root)}
	if root.Kind != yaml.MappingNode {
		return nil, &ValidationError{Kind: "role", Line: root.Line, Reason: "a role is a YAML mapping with kind, version, metadata and spec"}
	}
	if err := c.check(root, reflect.TypeFor[Role](), ""); err != nil {
		return nil, err
	}
	var r Role
	if err := root.Decode(&r); err != nil {
		// The shape check makes this rare; keep yaml's own words.
		return nil, &ValidationError{Kind: "role", Name: c.name, Reason: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// roleNameOf finds metadata.name in a role document, for error messages.
func roleNameOf(root *yaml.Node) string {
	meta := mappingValue(root, "metadata")
	if meta == nil {
		return ""
	}
	if n := mappingValue(meta, "name"); n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// shapeChecker walks a YAML node against the Go type it will decode into,
// refusing unknown fields and values of the wrong shape with the field's
// path and line, which yaml.v3's own errors lack.
type shapeChecker struct {
	name string // role name for errors
}

func (c *shapeChecker) fail(n *yaml.Node, path, reason string) error {
	return &ValidationError{Kind: "role", Name: c.name, Line: n.Line, Field: path, Reason: reason}
}

func (c *shapeChecker) check(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.AliasNode {
		return c.fail(n, path, "YAML aliases are not supported in roles; write the value out")
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty value decodes to the zero value
	}
	switch t {
	case reflect.TypeFor[Duration]():
		if _, reason := durationFromNode(n); reason != "" {
			return c.fail(n, path, reason)
		}
		return nil
	case reflect.TypeFor[Labels]():
		if _, p := labelsFromNode(n); p != nil {
			field := path
			if p.field != "" {
				field += "." + p.field
			}
			return c.fail(&yaml.Node{Line: p.line}, field, p.reason)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return c.fail(n, path, "expected a mapping of fields (key: value)")
		}
		names, types := yamlFields(t)
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return c.fail(k, path, "field names must be plain strings")
			}
			ft, ok := types[k.Value]
			if !ok {
				return c.fail(k, path, fmt.Sprintf("unknown field %s; known fields: %s", quoteShort(k.Value), strings.Join(names, ", ")))
			}
			if seen[k.Value] {
				return c.fail(k, path, fmt.Sprintf("field %q appears twice", k.Value))
			}
			seen[k.Value] = true
			if err := c.check(v, ft, joinPath(path, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return c.fail(n, path, "expected a list, like [a, b]")
		}
		for i, e := range n.Content {
			if e.Kind == yaml.ScalarNode && e.Tag == "!!null" {
				return c.fail(e, fmt.Sprintf("%s[%d]", path, i), "list entries cannot be empty")
			}
			if err := c.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return c.fail(n, path, "expected a single value")
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return c.fail(n, path, "expected true or false")
		}
	}
	return nil
}

// yamlFields lists a struct's YAML field names in order, with their types.
func yamlFields(t reflect.Type) ([]string, map[string]reflect.Type) {
	names := make([]string, 0, t.NumField())
	types := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		names = append(names, name)
		types[name] = f.Type
	}
	return names, types
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
