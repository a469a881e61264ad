package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as a string with units ("12h", "30m",
// "1h30m") in YAML and JSON. The zero value means "not set". JSON also
// accepts a number of nanoseconds.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d without zero trailing units: "12h", "30m", "1h30m", "0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, reason := durationFromNode(n)
	if reason != "" {
		return fmt.Errorf("line %d: %s", n.Line, reason)
	}
	*d = v
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if json.Unmarshal(b, &n) != nil {
			return fmt.Errorf("policy: duration %s is neither a string like \"12h\" nor a number of nanoseconds", quoteShort(string(b)))
		}
		if n < 0 {
			return fmt.Errorf("policy: duration %d is negative; durations must be zero or more", n)
		}
		*d = Duration(n)
		return nil
	}
	v, reason := parseDuration(s)
	if reason != "" {
		return fmt.Errorf("policy: %s", reason)
	}
	*d = v
	return nil
}

// durationFromNode decodes a YAML scalar, returning a reason when it is not a
// valid duration.
func durationFromNode(n *yaml.Node) (Duration, string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return 0, ""
	}
	if n.Kind != yaml.ScalarNode {
		return 0, `expected a duration like "12h" or "30m"`
	}
	return parseDuration(n.Value)
}

// parseDuration parses a duration with units, returning a reason when s is
// not one.
func parseDuration(s string) (Duration, string) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Sprintf(`%s is not a duration; write it with units, like "12h", "30m" or "1h30m"`, quoteShort(s))
	}
	if v < 0 {
		return 0, fmt.Sprintf("%s is negative; durations must be zero or more", quoteShort(s))
	}
	return Duration(v), ""
}
