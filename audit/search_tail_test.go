package audit

import (
	"context"
	"testing"
	"time"
)

func TestSearchByDatabaseAndTail(t *testing.T) {
	dir := t.TempDir()
	var content string
	for i, db := range []string{"pg1", "pg2", "pg1", "pg1", "pg2", "pg1"} {
		e, err := ParseRawEvent([]byte(`{"event":"db.session.query","db_service":"` + db + `","n":` + string(rune('0'+i)) + `}`))
		if err != nil {
			t.Fatal(err)
		}
		e.Time = day1.Add(time.Duration(i) * time.Minute)
		content += eventLine(t, e)
	}
	writeFile(t, dir, day1, content)

	ns := func(q Query) []string {
		t.Helper()
		res, err := Search(context.Background(), dir, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range res.Events {
			out = append(out, f["n"].(interface{ String() string }).String())
		}
		return out
	}
	eq := func(got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("got %v, want %v", got, want)
			}
		}
	}
	eq(ns(Query{DB: "pg1"}), "0", "2", "3", "5")
	eq(ns(Query{DB: "pg2"}), "1", "4")
	eq(ns(Query{DB: "pg1", Limit: 2}), "0", "2")
	eq(ns(Query{DB: "pg1", Limit: 2, Tail: true}), "3", "5")
	eq(ns(Query{DB: "pg1", Limit: 3, Tail: true}), "2", "3", "5")
	eq(ns(Query{Limit: 10, Tail: true}), "0", "1", "2", "3", "4", "5")
	eq(ns(Query{DB: "nope", Limit: 1, Tail: true}))
	eq(ns(Query{Tail: true}), "0", "1", "2", "3", "4", "5")
}
