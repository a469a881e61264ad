package policy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateName(t *testing.T) {
	for _, name := range []string{"a", "alice", "alice@example.com", "db-admin_2", "v1.2", "0day", strings.Repeat("a", 64)} {
		if err := ValidateName("user", name); err != nil {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", "Alice", "al ice", "a/b", "-rf", ".", "..", "_x", "@x", "é", "a\nb", strings.Repeat("a", 65), "a*"} {
		err := ValidateName("role", name)
		if !IsValidationError(err) {
			t.Errorf("ValidateName(%q) = %v, want a *ValidationError", name, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "invalid role name") || strings.Contains(err.Error(), "\n") {
			t.Errorf("ValidateName(%q) = %q", name, err)
		}
	}
	got := ValidateName("user", "Bob").Error()
	want := `invalid user name "Bob": use 1 to 64 characters from lowercase letters, digits, '-', '_', '.' and '@', starting with a letter or digit`
	if got != want {
		t.Errorf("error = %q\nwant    %q", got, want)
	}
}

func TestQuoteShortKeepsUTF8(t *testing.T) {
	long := strings.Repeat("é", 100)
	q := quoteShort(long)
	if !utf8.ValidString(q) || !strings.HasSuffix(q, `"...`) || len(q) > 100 {
		t.Errorf("quoteShort = %q", q)
	}
}
