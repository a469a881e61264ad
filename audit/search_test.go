package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeFile writes lines (each given without its newline) as an audit file
// started at start.
func writeFile(t *testing.T, dir string, start time.Time, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, fileName(start, 0)), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func eventLine(t *testing.T, e Event) string {
	t.Helper()
	if err := stamp(e, nil, nil); err != nil {
		t.Fatal(err)
	}
	line, err := MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(line) + "\n"
}

func at(user, typ string, when time.Time) Event {
	return &ResourceChange{
		Metadata:         Metadata{Type: typ, Time: when},
		UserMetadata:     UserMetadata{User: user},
		ResourceMetadata: ResourceMetadata{Name: user + "@" + when.Format("15:04")},
	}
}

func names(res *SearchResult) string {
	var n []string
	for _, f := range res.Events {
		n = append(n, f.GetString("resource_name"))
	}
	return strings.Join(n, ",")
}

func TestSearchTornLastLine(t *testing.T) {
	dir := t.TempDir()
	content := eventLine(t, login("a")) + eventLine(t, login("b"))
	full := eventLine(t, login("c"))
	writeFile(t, dir, day1, content+full[:len(full)/2])
	res := searchAll(t, dir)
	if got := users(res); got != "a,b" || res.Skipped != 1 {
		t.Errorf("events %q, skipped %d; want a,b and 1", got, res.Skipped)
	}
}

func TestSearchSkipsWhatIsNotAnEvent(t *testing.T) {
	dir := t.TempDir()
	content := strings.Join([]string{
		"",                       // blank: ignored, not counted
		"   ",                    // blank
		"not json",               // skipped
		`{"user":"no type"}`,     // skipped: no "event"
		`{"event":""}`,           // skipped: empty type
		`["event","user.login"]`, // skipped: not an object
		`{"event":"user.login"} {"event":"user.login"}`,                // skipped: two values
		`{"event":"custom.thing","user":"x","n":12345678901234567890}`, // kept: unknown types are events too
		"",
	}, "\n")
	writeFile(t, dir, day1, content+eventLine(t, login("a")))
	res := searchAll(t, dir)
	if len(res.Events) != 2 || res.Skipped != 5 {
		t.Fatalf("%d events, %d skipped; want 2 and 5", len(res.Events), res.Skipped)
	}
	if n := res.Events[0]["n"]; fmt.Sprint(n) != "12345678901234567890" {
		t.Errorf("large number decoded as %v", n)
	}
}

func TestSearchSkipsOverlongLine(t *testing.T) {
	dir := t.TempDir()
	long := `{"event":"user.login","user":"` + strings.Repeat("x", MaxLineSize) + `"}` + "\n"
	writeFile(t, dir, day1, eventLine(t, login("a"))+long+eventLine(t, login("b")))
	res := searchAll(t, dir)
	if got := users(res); got != "a,b" || res.Skipped != 1 {
		t.Errorf("events %q, skipped %d; want a,b and 1", got, res.Skipped)
	}
}

func TestSearchFilters(t *testing.T) {
	dir := t.TempDir()
	t0 := day1
	var file1, file2 strings.Builder
	file1.WriteString(eventLine(t, at("alice", TypeUserCreate, t0)))
	file1.WriteString(eventLine(t, at("bob", TypeRoleCreate, t0.Add(time.Hour))))
	file1.WriteString(eventLine(t, at("alice", TypeRoleUpdate, t0.Add(2*time.Hour))))
	file2.WriteString(eventLine(t, at("alice", TypeUserDelete, t0.Add(3*time.Hour))))
	file2.WriteString(eventLine(t, at("bob", TypeLockCreate, t0.Add(4*time.Hour))))
	writeFile(t, dir, t0, file1.String())
	writeFile(t, dir, t0.Add(3*time.Hour), file2.String())

	for _, tc := range []struct {
		name string
		q    Query
		want string
	}{
		{"all", Query{}, "alice@12:00,bob@13:00,alice@14:00,alice@15:00,bob@16:00"},
		{"type", Query{Types: []string{TypeRoleCreate, TypeLockCreate}}, "bob@13:00,bob@16:00"},
		{"type prefix", Query{Types: []string{"role.*"}}, "bob@13:00,alice@14:00"},
		{"bare star is not a prefix", Query{Types: []string{"*"}}, ""},
		{"user", Query{User: "alice"}, "alice@12:00,alice@14:00,alice@15:00"},
		{"from inclusive", Query{From: t0.Add(2 * time.Hour)}, "alice@14:00,alice@15:00,bob@16:00"},
		{"to exclusive", Query{To: t0.Add(2 * time.Hour)}, "alice@12:00,bob@13:00"},
		{"range across files", Query{From: t0.Add(time.Hour), To: t0.Add(4 * time.Hour)}, "bob@13:00,alice@14:00,alice@15:00"},
		{"combined", Query{User: "alice", Types: []string{"user.*"}, From: t0.Add(time.Minute)}, "alice@15:00"},
		{"limit", Query{User: "alice", Limit: 2}, "alice@12:00,alice@14:00"},
		{"nothing", Query{User: "carol"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Search(context.Background(), dir, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(res); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSearchTimeFilterNeedsTime(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, day1, `{"event":"custom.thing"}`+"\n"+`{"event":"custom.thing","time":"soon"}`+"\n")
	res, err := Search(context.Background(), dir, Query{From: day1.Add(-time.Hour)})
	if err != nil || len(res.Events) != 0 {
		t.Errorf("events without a readable time matched a time range: %v, %v", res, err)
	}
	if res := searchAll(t, dir); len(res.Events) != 2 {
		t.Errorf("unbounded query: %d events, want 2", len(res.Events))
	}
}

func TestScanStopsOnCallbackError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, day1, eventLine(t, login("a"))+eventLine(t, login("b")))
	stop := errors.New("enough")
	st, err := Scan(context.Background(), dir, Query{}, func(Fields) error { return stop })
	if !errors.Is(err, stop) || st.Matched != 1 || st.Files != 1 {
		t.Errorf("got %+v, %v", st, err)
	}
}

func TestSearchErrors(t *testing.T) {
	if _, err := Search(context.Background(), filepath.Join(t.TempDir(), "missing"), Query{}); err == nil {
		t.Error("missing directory: no error")
	}
	dir := t.TempDir()
	writeFile(t, dir, day1, eventLine(t, login("a")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Search(ctx, dir, Query{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
}

func TestFileNames(t *testing.T) {
	start := time.Date(2026, 11, 23, 20, 30, 0, 123_000_000, time.UTC)
	for _, tc := range []struct {
		seq  int
		name string
	}{
		{0, "audit-20261123T203000.123Z.log"},
		{3, "audit-20261123T203000.123Z-3.log"},
	} {
		if got := fileName(start, tc.seq); got != tc.name {
			t.Errorf("fileName(%d) = %s, want %s", tc.seq, got, tc.name)
		}
		lf, ok := parseFileName(tc.name)
		if !ok || !lf.start.Equal(start) || lf.seq != tc.seq {
			t.Errorf("parseFileName(%s) = %+v, %v", tc.name, lf, ok)
		}
	}
	for _, bad := range []string{
		"audit-20261123T203000.123Z", "audit-20261123T203000.123.log", "audit-20261123T203000Z.log",
		"audit-20261123T203000.123Z-0.log", "audit-20261123T203000.123Z-01.log", "audit-20261123T203000.123Z--1.log",
		"audit-20261323T203000.123Z.log", "x-20261123T203000.123Z.log", "audit-.log",
	} {
		if _, ok := parseFileName(bad); ok {
			t.Errorf("parseFileName(%s) accepted", bad)
		}
	}
}

func FuzzScanLines(f *testing.F) {
	f.Add([]byte(`{"event":"user.login","user":"alice","time":"2026-11-23T20:30:00Z"}` + "\n"))
	f.Add([]byte(`{"event":"user.login"}` + "\n" + `{"event":"user.lo`))
	f.Add([]byte("\n\n{}\n[]\nnull\n{\"event\":1}\n"))
	f.Add([]byte(`{"event":"x","n":1e400}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var st ScanStats
		q := Query{}
		err := scanLines(context.Background(), bytes.NewReader(data), &q, &st, func(f Fields) error {
			if f.Type() == "" {
				t.Errorf("event without a type: %v", f)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if lines := bytes.Count(data, []byte{'\n'}) + 1; st.Matched+st.Skipped > lines {
			t.Errorf("%d events and %d skipped from %d lines", st.Matched, st.Skipped, lines)
		}
	})
}

func FuzzParseFileName(f *testing.F) {
	f.Add("audit-20261123T203000.123Z.log")
	f.Add("audit-20261123T203000.123Z-7.log")
	f.Add("audit-99991231T235959.999Z-2147483647.log")
	f.Fuzz(func(t *testing.T, name string) {
		lf, ok := parseFileName(name)
		if ok && fileName(lf.start, lf.seq) != name {
			t.Errorf("%q parsed as %+v, which names %q", name, lf, fileName(lf.start, lf.seq))
		}
	})
}
