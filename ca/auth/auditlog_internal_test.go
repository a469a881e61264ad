package auth

import (
	"bytes"
	"fmt"
	"testing"
)

func TestUIDWindowForgetsTheOldest(t *testing.T) {
	w := newUIDWindow(3)
	for i := range 3 {
		w.add(fmt.Sprint(i))
	}
	w.add("0") // refreshed: now the newest
	w.add("3") // evicts "1"
	for id, want := range map[string]bool{"0": true, "1": false, "2": true, "3": true} {
		if w.contains(id) != want {
			t.Errorf("contains(%s) = %v, want %v", id, !want, want)
		}
	}
	if len(w.index) != 3 {
		t.Errorf("window holds %d entries, want 3", len(w.index))
	}

	// An ID added twice in a row stays until its second addition leaves.
	w = newUIDWindow(3)
	for _, id := range []string{"a", "a", "b", "c"} {
		w.add(id)
	}
	if !w.contains("a") || !w.contains("c") {
		t.Error("a or c forgotten too early")
	}
	w.add("d")
	if w.contains("a") || !w.contains("b") || len(w.index) != 3 {
		t.Errorf("after d: a %v, b %v, %d entries; want false, true, 3", w.contains("a"), w.contains("b"), len(w.index))
	}
}

// checkBatchPaths fails t if the fast path of parseAuditBatch accepts a
// body that the strict path refuses, or reads it differently.
func checkBatchPaths(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	got, err := parseAuditBatch(body, "test", "agent-1", true)
	want, werr := parseAuditBatch(body, "test", "agent-1", false)
	if err == errSlowPath {
		return false
	}
	if err != nil {
		t.Fatalf("fast path on %q: %v (only errSlowPath is allowed)", body, err)
	}
	if werr != nil {
		t.Fatalf("fast path accepted %q, the strict path refuses it: %v", body, werr)
	}
	if len(got) != len(want) {
		t.Fatalf("fast path on %q: %d events, strict %d", body, len(got), len(want))
	}
	for i := range got {
		g, _ := got[i].MarshalJSON()
		w, _ := want[i].MarshalJSON()
		if !bytes.Equal(g, w) {
			t.Fatalf("fast path on %q: event %d is %s, strict %s", body, i, g, w)
		}
	}
	return true
}

var batchSeeds = []string{
	`{"events":[]}`,
	`{"events":[{"event":"x","uid":"u","time":"2026-11-23T20:30:00Z"}]}`,
	" \n{ \"events\" :\t[ {\"event\":\"x\",\"uid\":\"u\",\"time\":\"2026-11-23T20:30:00Z\",\"q\":\"}]\\\"{[\"} ,\r\n" +
		`{"event":"y","uid":"v","time":"2026-11-23T20:30:00Z","n":[{"a":"]"}]} ] } `,
	`{"events":[{"event":"x","uid":"u","time":"2026-11-23T20:30:00Z","a":"\"}\\"}]}`,
	`{"Events":[{"event":"x","uid":"u","time":"2026-11-23T20:30:00Z"}]}`,
	`{"events":[{"event":"x","uid":"u","time":"2026-11-23T20:30:00Z"}],"more":1}`,
	`{"events":[{"event":"x","uid":"u","time":"2026-11-23T20:30:00Z"}]}x`,
	`{"events":[{"event":"x","uid":"u","time":"2026-11-23T20:30:00Z"},]}`,
	`{"events":[{"event":"x","uid":"u","time":"2026-11-23T20:30:00Z"}}`,
	`{"events":[{"event":"x","uid":"u","time":"2026-11-23T20:30:00Z"} {"event":"x","uid":"v","time":"2026-11-23T20:30:00Z"}]}`,
	`{"events":[{"event":"x","uid":"u"}]}`,
	`{"events":null}`,
	`{"events":[1]}`,
}

func TestAuditBatchFastPath(t *testing.T) {
	for i, body := range batchSeeds {
		fast := checkBatchPaths(t, []byte(body))
		if want := i < 4; fast != want {
			t.Errorf("batch %q: fast path %v, want %v", body, fast, want)
		}
	}
}

func FuzzAuditBatchFastPath(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkBatchPaths(t, body)
	})
}
