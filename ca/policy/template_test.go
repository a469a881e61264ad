package policy

import (
	"slices"
	"testing"
)

func TestExpandValues(t *testing.T) {
	traits := map[string][]string{
		"db_users": {"alice", "", "bob"},
		"team":     {"pay"},
		"star":     {"*"},
		"sneaky":   {"{{internal.db_users}}"},
	}
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"alice"}, []string{"alice"}},
		{[]string{"*"}, []string{"*"}},
		{[]string{"{{internal.db_users}}"}, []string{"alice", "bob"}},
		{[]string{"{{external.db_users}}"}, []string{"alice", "bob"}},
		{[]string{"{{  internal.team  }}"}, []string{"pay"}},
		{[]string{"{{internal.team}}-ro", "app_{{external.team}}"}, []string{"pay-ro", "app_pay"}},
		{[]string{"{{internal.missing}}"}, nil},
		{[]string{"{{internal.missing}}", "carol"}, []string{"carol"}},
		{[]string{"{{internal.star}}"}, []string{"*"}},                       // documented: a "*" trait is a wildcard
		{[]string{"{{internal.sneaky}}"}, []string{"{{internal.db_users}}"}}, // trait values are not expanded again
	}
	for _, tt := range tests {
		if got := expandValues(tt.in, traits, ""); !slices.Equal(got, tt.want) {
			t.Errorf("expandValues(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := expandValues([]string{"{{nope", "x"}, nil, ""); !slices.Equal(got, []string{"x"}) {
		t.Errorf("malformed value in an allow block = %q, want it dropped", got)
	}
	if got := expandValues([]string{"{{nope", "x"}, nil, Wildcard); !slices.Equal(got, []string{"*", "x"}) {
		t.Errorf("malformed value in a deny block = %q, want it to become *", got)
	}
}

func TestCheckValue(t *testing.T) {
	for _, v := range []string{"a", "*", "{{internal.db_users}}", "{{external.a:b/c.d}}", "x-{{internal.y}}-z", "{{ internal.k }}"} {
		if r := checkValue(v); r != "" {
			t.Errorf("checkValue(%q) = %q, want ok", v, r)
		}
	}
	for _, v := range []string{"", "{{", "}}", "{{internal}}", "{{internal.}}", "{{internal.a b}}", "{{foo.bar}}",
		"{{internal.a}}{{internal.b}}", "{{internal.{{a}}}}", "a*", "*{{internal.a}}", "{{internal.a}}}}", "{internal.a}}"} {
		if r := checkValue(v); r == "" {
			t.Errorf("checkValue(%q) accepted a bad value", v)
		}
	}
}
