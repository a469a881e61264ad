package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func rawLines(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		out[i] = json.RawMessage(s)
	}
	return out
}

func peekAll(t *testing.T, s *spool) ([]string, spoolPos) {
	t.Helper()
	events, pos, err := s.peek(1000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = string(e)
	}
	return out, pos
}

func TestSpoolAckKeepsWhatWasAppendedAfterPeek(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 1<<20, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.append(rawLines(`{"n":1}`, `{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	got, pos := peekAll(t, s)
	if len(got) != 2 {
		t.Fatalf("peek = %v", got)
	}
	// Appended to the same segment while the peeked batch is in flight.
	if err := s.append(rawLines(`{"n":3}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.ack(pos); err != nil {
		t.Fatal(err)
	}
	got, pos = peekAll(t, s)
	if len(got) != 1 || got[0] != `{"n":3}` {
		t.Fatalf("after ack: %v", got)
	}
	if err := s.ack(pos); err != nil {
		t.Fatal(err)
	}
	if !s.empty() || len(spoolFiles(t, dir)) != 0 {
		t.Errorf("spool not empty after acking everything: %d bytes, %d files", s.bytes(), len(spoolFiles(t, dir)))
	}
}

func TestSpoolSegmentsAndLimits(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 20, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.append(rawLines(`{"n":` + string(rune('0'+i)) + `,"pad":"xxxxxx"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(spoolFiles(t, dir)); n != 5 {
		t.Fatalf("%d segments, want one per append past the segment size", n)
	}
	events, pos, err := s.peek(3, 1<<20)
	if err != nil || len(events) != 3 {
		t.Fatalf("peek 3 = %d, %v", len(events), err)
	}
	if err := s.ack(pos); err != nil {
		t.Fatal(err)
	}
	if n := len(spoolFiles(t, dir)); n != 2 {
		t.Fatalf("%d segments after acking 3, want 2", n)
	}
	// A byte limit still returns at least one event.
	events, _, err = s.peek(10, 1)
	if err != nil || len(events) != 1 || string(events[0]) != `{"n":3,"pad":"xxxxxx"}` {
		t.Fatalf("peek with a tiny byte limit = %q, %v", events, err)
	}
	s.close()

	// Reopened, it continues after the last segment.
	s, err = openSpool(dir, 20, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.append(rawLines(`{"n":5}`)); err != nil {
		t.Fatal(err)
	}
	got, _ := peekAll(t, s)
	if len(got) != 3 || got[2] != `{"n":5}` {
		t.Fatalf("after reopening: %v", got)
	}
}

func TestSpoolSkipsCorruptLines(t *testing.T) {
	dir := t.TempDir()
	content := "{\"n\":1}\nnot json\n\n{\"n\":2}\n[1]\n{\"n\":3,\"torn"
	if err := os.WriteFile(filepath.Join(dir, spoolName(7)), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, spoolName(9)), nil, 0o600); err != nil { // crashed before writing
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spool-7.jsonl"), []byte("{}\n"), 0o600); err != nil { // not ours
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := openSpool(dir, 1<<20, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	got, pos := peekAll(t, s)
	if len(got) != 2 || got[0] != `{"n":1}` || got[1] != `{"n":2}` {
		t.Fatalf("peek = %v", got)
	}
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 3 {
		t.Errorf("%d errors logged for 3 corrupt lines", n)
	}
	if err := s.ack(pos); err != nil {
		t.Fatal(err)
	}
	if !s.empty() {
		t.Errorf("%d bytes left", s.bytes())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "spool-7.jsonl" {
		t.Errorf("left in the directory: %v", entries)
	}
	if err := s.append(rawLines(`{"n":4}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, spoolName(8))); err != nil {
		t.Errorf("new segment after 7: %v", err)
	}
}

func TestSpoolNames(t *testing.T) {
	if seq, ok := parseSpoolName(spoolName(42)); !ok || seq != 42 {
		t.Errorf("round trip: %d, %v", seq, ok)
	}
	for _, bad := range []string{"spool-42.jsonl", "spool-+0000000000000000042.jsonl", "spool-00000000000000000042.log",
		"x-00000000000000000042.jsonl", "spool-99999999999999999999.jsonl"} {
		if _, ok := parseSpoolName(bad); ok {
			t.Errorf("parseSpoolName(%q) accepted it", bad)
		}
	}
}
