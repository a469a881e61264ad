package storagetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca/storage"
)

func testPutGet(t *testing.T, h *harness) {
	p1 := h.put(t, "users/alice", "v1")
	wantItem(t, p1, "users/alice", "v1", time.Time{})
	if p1.Revision <= 0 {
		t.Fatalf("Put returned revision %d, want > 0", p1.Revision)
	}
	g1 := h.get(t, "users/alice")
	wantItem(t, g1, "users/alice", "v1", time.Time{})
	if g1.Revision != p1.Revision {
		t.Fatalf("Get revision %d, want Put's %d", g1.Revision, p1.Revision)
	}

	// The caller's revision is ignored; an overwrite gets a new one.
	p2, err := h.b.Put(h.ctx, storage.Item{Key: "users/alice", Value: []byte("v2"), Revision: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Revision <= p1.Revision || p2.Revision == 1<<40 {
		t.Fatalf("overwrite got revision %d after %d", p2.Revision, p1.Revision)
	}
	g2 := h.get(t, "users/alice")
	wantItem(t, g2, "users/alice", "v2", time.Time{})
	if g2.Revision != p2.Revision {
		t.Fatalf("Get revision %d, want %d", g2.Revision, p2.Revision)
	}

	// An empty value is a value.
	h.put(t, "users/empty", "")
	if g := h.get(t, "users/empty"); len(g.Value) != 0 {
		t.Fatalf("empty value came back as %q", g.Value)
	}
}

func testGetNotFound(t *testing.T, h *harness) {
	_, err := h.b.Get(h.ctx, "users/nobody")
	wantNotFound(t, err, "users/nobody")
	if !strings.Contains(err.Error(), `"users/nobody"`) {
		t.Fatalf("error %q does not name the key", err)
	}
	if storage.IsAlreadyExists(err) || storage.IsCompareFailed(err) {
		t.Fatalf("not-found error %v also matches another kind", err)
	}
}

func testCreate(t *testing.T, h *harness) {
	c, err := h.b.Create(h.ctx, storage.Item{Key: "tokens/t1", Value: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	wantItem(t, c, "tokens/t1", "a", time.Time{})

	_, err = h.b.Create(h.ctx, storage.Item{Key: "tokens/t1", Value: []byte("b")})
	var ae *storage.AlreadyExistsError
	if !errors.As(err, &ae) || !storage.IsAlreadyExists(err) || ae.Key != "tokens/t1" {
		t.Fatalf("second Create: got %v, want an AlreadyExistsError for tokens/t1", err)
	}
	if !strings.Contains(err.Error(), `"tokens/t1"`) {
		t.Fatalf("error %q does not name the key", err)
	}
	g := h.get(t, "tokens/t1")
	wantItem(t, g, "tokens/t1", "a", time.Time{})
	if g.Revision != c.Revision {
		t.Fatalf("failed Create changed the revision from %d to %d", c.Revision, g.Revision)
	}

	h.del(t, "tokens/t1")
	if _, err := h.b.Create(h.ctx, storage.Item{Key: "tokens/t1", Value: []byte("c")}); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
	wantItem(t, h.get(t, "tokens/t1"), "tokens/t1", "c", time.Time{})
}

func testDelete(t *testing.T, h *harness) {
	h.put(t, "roles/a", "x")
	h.put(t, "roles/ab", "y")
	h.del(t, "roles/a")
	h.wantNotFound(t, "roles/a")
	wantItem(t, h.get(t, "roles/ab"), "roles/ab", "y", time.Time{})
	wantNotFound(t, h.b.Delete(h.ctx, "roles/a"), "roles/a")
	wantNotFound(t, h.b.Delete(h.ctx, "roles/never"), "roles/never")
}

func testCompareAndSwap(t *testing.T, h *harness) {
	wantFailed := func(t *testing.T, err error, key string, expected int64) {
		t.Helper()
		var cf *storage.CompareFailedError
		if !errors.As(err, &cf) || !storage.IsCompareFailed(err) {
			t.Fatalf("got %v, want a CompareFailedError", err)
		}
		if cf.Key != key || cf.Expected != expected {
			t.Fatalf("CompareFailedError{%q, %d}, want {%q, %d}", cf.Key, cf.Expected, key, expected)
		}
		if !strings.Contains(err.Error(), strconv.Quote(key)) {
			t.Fatalf("error %q does not name the key", err)
		}
	}

	p := h.put(t, "locks/l", "v1")
	s1, err := h.b.CompareAndSwap(h.ctx, p.Revision, storage.Item{Key: "locks/l", Value: []byte("v2")})
	if err != nil {
		t.Fatalf("CompareAndSwap with the current revision: %v", err)
	}
	wantItem(t, s1, "locks/l", "v2", time.Time{})
	if s1.Revision <= p.Revision {
		t.Fatalf("CompareAndSwap revision %d not after %d", s1.Revision, p.Revision)
	}

	// The stale revision fails and changes nothing.
	_, err = h.b.CompareAndSwap(h.ctx, p.Revision, storage.Item{Key: "locks/l", Value: []byte("v3")})
	wantFailed(t, err, "locks/l", p.Revision)
	g := h.get(t, "locks/l")
	wantItem(t, g, "locks/l", "v2", time.Time{})
	if g.Revision != s1.Revision {
		t.Fatalf("failed CompareAndSwap changed the revision to %d", g.Revision)
	}

	// Revision 0 means "absent".
	_, err = h.b.CompareAndSwap(h.ctx, 0, storage.Item{Key: "locks/l", Value: []byte("v3")})
	wantFailed(t, err, "locks/l", 0)
	c, err := h.b.CompareAndSwap(h.ctx, 0, storage.Item{Key: "locks/new", Value: []byte("n")})
	if err != nil {
		t.Fatalf("CompareAndSwap(0) on an absent key: %v", err)
	}
	wantItem(t, c, "locks/new", "n", time.Time{})

	// A non-zero revision on an absent or deleted key fails.
	_, err = h.b.CompareAndSwap(h.ctx, s1.Revision, storage.Item{Key: "locks/missing", Value: []byte("x")})
	wantFailed(t, err, "locks/missing", s1.Revision)
	h.wantNotFound(t, "locks/missing")
	h.del(t, "locks/l")
	_, err = h.b.CompareAndSwap(h.ctx, s1.Revision, storage.Item{Key: "locks/l", Value: []byte("x")})
	wantFailed(t, err, "locks/l", s1.Revision)
	h.wantNotFound(t, "locks/l")
}

func testRevisionsIncrease(t *testing.T, h *harness) {
	var revs []int64
	add := func(it storage.Item, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, it.Revision)
	}
	add(h.b.Put(h.ctx, storage.Item{Key: "a/1", Value: []byte("x")}))
	add(h.b.Put(h.ctx, storage.Item{Key: "b/1", Value: []byte("x")}))
	add(h.b.Create(h.ctx, storage.Item{Key: "c/1", Value: []byte("x")}))
	add(h.b.CompareAndSwap(h.ctx, revs[0], storage.Item{Key: "a/1", Value: []byte("y")}))
	h.del(t, "b/1")
	add(h.b.Put(h.ctx, storage.Item{Key: "b/1", Value: []byte("z")}))
	add(h.b.Put(h.ctx, storage.Item{Key: "a/1", Value: []byte("z")}))
	for i := 1; i < len(revs); i++ {
		if revs[i] <= revs[i-1] {
			t.Fatalf("revisions %v are not strictly increasing", revs)
		}
	}
}

func testRange(t *testing.T, h *harness) {
	// Written out of order; Range must sort.
	for _, k := range []string{"users/b", "usersx", "users", "users/ab", "roles/x", "users/a", "users/a/deep", "v"} {
		h.put(t, k, "value of "+k)
	}
	cases := []struct {
		prefix string
		limit  int
		want   []string
	}{
		{"users/", 0, []string{"users/a", "users/a/deep", "users/ab", "users/b"}},
		{"users/a", 0, []string{"users/a", "users/a/deep", "users/ab"}},
		{"users/a/", 0, []string{"users/a/deep"}},
		{"users", 0, []string{"users", "users/a", "users/a/deep", "users/ab", "users/b", "usersx"}},
		{"users/", 2, []string{"users/a", "users/a/deep"}},
		{"users/", 4, []string{"users/a", "users/a/deep", "users/ab", "users/b"}},
		{"users/", 100, []string{"users/a", "users/a/deep", "users/ab", "users/b"}},
		{"", 0, []string{"roles/x", "users", "users/a", "users/a/deep", "users/ab", "users/b", "usersx", "v"}},
		{"", 1, []string{"roles/x"}},
		{"nothing/", 0, nil},
		{"w", 0, nil},
	}
	for _, c := range cases {
		if got := h.keys(t, c.prefix, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("Range(%q, %d) = %q, want %q", c.prefix, c.limit, got, c.want)
		}
	}
	items, err := h.b.Range(h.ctx, "roles/", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 {
		t.Fatalf("Range(roles/) returned %d items", len(items))
	}
	wantItem(t, items[0], "roles/x", "value of roles/x", time.Time{})
	if g := h.get(t, "roles/x"); items[0].Revision != g.Revision {
		t.Fatalf("Range revision %d, Get revision %d", items[0].Revision, g.Revision)
	}
	if _, err := h.b.Range(h.ctx, "users/", -1); err == nil {
		t.Fatal("Range with a negative limit succeeded")
	}
}

func testValuesAreCopied(t *testing.T, h *harness) {
	v := []byte("original")
	if _, err := h.b.Put(h.ctx, storage.Item{Key: "k/1", Value: v}); err != nil {
		t.Fatal(err)
	}
	copy(v, "MUTATED!")
	g := h.get(t, "k/1")
	if string(g.Value) != "original" {
		t.Fatalf("stored value changed with the caller's slice: %q", g.Value)
	}
	copy(g.Value, "MUTATED!")
	if g2 := h.get(t, "k/1"); !bytes.Equal(g2.Value, []byte("original")) {
		t.Fatalf("stored value changed with a returned slice: %q", g2.Value)
	}
	items, err := h.b.Range(h.ctx, "k/", 0)
	if err != nil {
		t.Fatal(err)
	}
	copy(items[0].Value, "MUTATED!")
	if g3 := h.get(t, "k/1"); string(g3.Value) != "original" {
		t.Fatalf("stored value changed with a Range slice: %q", g3.Value)
	}
}

func testInvalidKey(t *testing.T, h *harness) {
	for _, key := range []string{"", "bad\x00key", "bad\xffutf8", strings.Repeat("k", storage.MaxKeyLen+1)} {
		if _, err := h.b.Put(h.ctx, storage.Item{Key: key, Value: []byte("x")}); err == nil {
			t.Errorf("Put(%.20q) succeeded", key)
		}
		if _, err := h.b.Create(h.ctx, storage.Item{Key: key}); err == nil {
			t.Errorf("Create(%.20q) succeeded", key)
		}
		if _, err := h.b.CompareAndSwap(h.ctx, 0, storage.Item{Key: key}); err == nil || storage.IsCompareFailed(err) {
			t.Errorf("CompareAndSwap(%.20q): got %v, want a key error", key, err)
		}
		if _, err := h.b.Get(h.ctx, key); err == nil || storage.IsNotFound(err) {
			t.Errorf("Get(%.20q): got %v, want a key error", key, err)
		}
		if err := h.b.Delete(h.ctx, key); err == nil || storage.IsNotFound(err) {
			t.Errorf("Delete(%.20q): got %v, want a key error", key, err)
		}
	}
	if _, err := h.b.Put(h.ctx, storage.Item{Key: strings.Repeat("k", storage.MaxKeyLen)}); err != nil {
		t.Errorf("Put with a %d-byte key: %v", storage.MaxKeyLen, err)
	}
}

func testContextDone(t *testing.T, h *harness) {
	h.put(t, "k/1", "x")
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: got %v, want context.Canceled", op, err)
		}
	}
	_, err := h.b.Get(ctx, "k/1")
	check("Get", err)
	_, err = h.b.Put(ctx, storage.Item{Key: "k/2"})
	check("Put", err)
	_, err = h.b.Create(ctx, storage.Item{Key: "k/2"})
	check("Create", err)
	_, err = h.b.CompareAndSwap(ctx, 0, storage.Item{Key: "k/2"})
	check("CompareAndSwap", err)
	check("Delete", h.b.Delete(ctx, "k/1"))
	_, err = h.b.Range(ctx, "", 0)
	check("Range", err)
	_, err = h.b.Watch(ctx, "")
	check("Watch", err)
	h.get(t, "k/1")
	h.wantNotFound(t, "k/2")
}
