package storagetest

import (
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca/storage"
)

func testTTL(t *testing.T, h *harness) {
	expires := h.clock.Now().Add(time.Minute)
	p := h.putTTL(t, "inventory/db/h1/pg", "a", time.Minute)
	wantItem(t, p, "inventory/db/h1/pg", "a", expires)
	h.put(t, "inventory/db/h1/my", "b")

	// Live until the clock reaches Expires.
	h.clock.Advance(time.Minute - time.Nanosecond)
	g := h.get(t, "inventory/db/h1/pg")
	wantItem(t, g, "inventory/db/h1/pg", "a", expires)
	if g.Expires.Location() != time.UTC {
		t.Errorf("Expires came back in %v, want UTC", g.Expires.Location())
	}
	if got := h.keys(t, "inventory/", 0); len(got) != 2 {
		t.Fatalf("Range before expiry = %q", got)
	}

	// Expired exactly at Expires: invisible to every operation.
	h.clock.Advance(time.Nanosecond)
	h.wantNotFound(t, "inventory/db/h1/pg")
	if got := h.keys(t, "inventory/", 0); len(got) != 1 || got[0] != "inventory/db/h1/my" {
		t.Fatalf("Range after expiry = %q, want only the item without TTL", got)
	}
	if got := h.keys(t, "inventory/", 1); len(got) != 1 || got[0] != "inventory/db/h1/my" {
		t.Fatalf("Range with limit 1 after expiry = %q; expired items must not count", got)
	}
	if _, err := h.b.CompareAndSwap(h.ctx, p.Revision, storage.Item{Key: p.Key, Value: []byte("x")}); !storage.IsCompareFailed(err) {
		t.Fatalf("CompareAndSwap on an expired item: got %v, want a CompareFailedError", err)
	}
	wantNotFound(t, h.b.Delete(h.ctx, p.Key), p.Key)

	// An expired item counts as absent for Create and CompareAndSwap(0).
	c, err := h.b.Create(h.ctx, storage.Item{Key: p.Key, Value: []byte("again")})
	if err != nil {
		t.Fatalf("Create over an expired item: %v", err)
	}
	if c.Revision <= p.Revision {
		t.Fatalf("Create revision %d not after %d", c.Revision, p.Revision)
	}
	wantItem(t, h.get(t, p.Key), p.Key, "again", time.Time{})

	h.putTTL(t, "inventory/db/h2/pg", "b", time.Second)
	h.clock.Advance(time.Second)
	if _, err := h.b.CompareAndSwap(h.ctx, 0, storage.Item{Key: "inventory/db/h2/pg", Value: []byte("c")}); err != nil {
		t.Fatalf("CompareAndSwap(0) over an expired item: %v", err)
	}

	// Refreshing a TTL (a heartbeat) moves the expiry.
	h.putTTL(t, "inventory/db/h3/pg", "hb", time.Minute)
	h.clock.Advance(30 * time.Second)
	h.putTTL(t, "inventory/db/h3/pg", "hb", time.Minute)
	h.clock.Advance(45 * time.Second)
	wantItem(t, h.get(t, "inventory/db/h3/pg"), "inventory/db/h3/pg", "hb", h.clock.Now().Add(15*time.Second))
}

func testTTLInThePast(t *testing.T, h *harness) {
	if _, err := h.b.Put(h.ctx, storage.Item{Key: "k/old", Value: []byte("x"), Expires: h.clock.Now().Add(-time.Second)}); err != nil {
		t.Fatalf("Put with a past expiry: %v", err)
	}
	h.wantNotFound(t, "k/old")
	if got := h.keys(t, "k/", 0); len(got) != 0 {
		t.Fatalf("Range = %q, want nothing", got)
	}
}

func testTTLSweep(t *testing.T, h *harness) {
	w := h.watch(t, "inventory/")
	a := h.putTTL(t, "inventory/a", "a", time.Minute)
	b := h.put(t, "inventory/b", "b")
	c := h.putTTL(t, "inventory/c", "c", time.Hour)
	wantEvent(t, w, storage.EventPut, "inventory/a", a.Revision)
	wantEvent(t, w, storage.EventPut, "inventory/b", b.Revision)
	wantEvent(t, w, storage.EventPut, "inventory/c", c.Revision)

	sw, canSweep := h.b.(storage.Sweeper)
	if canSweep {
		// Nothing has expired: nothing to delete, whatever the
		// backend's own schedule does.
		n, err := sw.Sweep(h.ctx)
		if err != nil || n != 0 {
			t.Fatalf("Sweep before expiry = %d, %v; want 0, nil", n, err)
		}
	}

	h.clock.Advance(2 * time.Minute)
	if canSweep {
		if _, err := sw.Sweep(h.ctx); err != nil {
			t.Fatalf("Sweep: %v", err)
		}
	}
	ev := wantEvent(t, w, storage.EventDelete, "inventory/a", 0)
	if ev.Item.Revision <= c.Revision {
		t.Fatalf("sweep delete revision %d not after the last write's %d", ev.Item.Revision, c.Revision)
	}
	if len(ev.Item.Value) != 0 {
		t.Fatalf("delete event carries a value %q", ev.Item.Value)
	}
	if canSweep {
		if n, err := sw.Sweep(h.ctx); err != nil || n != 0 {
			t.Fatalf("second Sweep = %d, %v; want 0, nil", n, err)
		}
	}
	h.wantNotFound(t, "inventory/a")
	h.get(t, "inventory/b")
	h.get(t, "inventory/c")

	// The next write's event follows the sweep's: nothing else was swept.
	d := h.put(t, "inventory/d", "d")
	wantEvent(t, w, storage.EventPut, "inventory/d", d.Revision)
	if d.Revision <= ev.Item.Revision {
		t.Fatalf("write after sweep got revision %d, not after %d", d.Revision, ev.Item.Revision)
	}
}
