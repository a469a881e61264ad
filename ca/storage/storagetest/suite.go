// Package storagetest is the conformance suite for [storage.Backend]
// implementations. Every backend (the embedded boltstore, a future
// PostgreSQL backend) runs the same tests from its own test file:
//
//	func TestConformance(t *testing.T) {
//		storagetest.RunBackendTests(t, func(t *testing.T, clock func() time.Time) storage.Backend {
//			s, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"), boltstore.Options{Clock: clock})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
package storagetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca/storage"
)

// NewBackend returns a new, empty backend that checks expiry against clock.
// The suite closes the backend when the test ends; NewBackend registers
// the cleanup of anything else (files, database schemas) with t.Cleanup.
type NewBackend func(t *testing.T, clock func() time.Time) storage.Backend

// EventTimeout is how long the suite waits for an event that must arrive
// before it fails. It bounds a hang, it does not measure anything: a
// backend without storage.Sweeper must sweep expired items within it.
const EventTimeout = 30 * time.Second

// RunBackendTests runs the conformance suite against backends made by
// newBackend, one per subtest. The suite assumes that a watcher buffers at
// least 256 events.
func RunBackendTests(t *testing.T, newBackend NewBackend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"PutGet", testPutGet},
		{"GetNotFound", testGetNotFound},
		{"Create", testCreate},
		{"Delete", testDelete},
		{"CompareAndSwap", testCompareAndSwap},
		{"RevisionsIncrease", testRevisionsIncrease},
		{"Range", testRange},
		{"ValuesAreCopied", testValuesAreCopied},
		{"InvalidKey", testInvalidKey},
		{"ContextDone", testContextDone},
		{"TTL", testTTL},
		{"TTLInThePast", testTTLInThePast},
		{"TTLSweep", testTTLSweep},
		{"Watch", testWatch},
		{"WatchSeveral", testWatchSeveral},
		{"WatchClose", testWatchClose},
		{"WatchContext", testWatchContext},
		{"CloseBackend", testCloseBackend},
		{"ConcurrentCompareAndSwap", testConcurrentCompareAndSwap},
		{"WatchOrderConcurrentPuts", testWatchOrderConcurrentPuts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
			b := newBackend(t, clock.Now)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, &harness{b: b, clock: clock, ctx: t.Context()})
		})
	}
}

// fakeClock is the clock the suite controls.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness is one subtest's backend with helpers that fail the test on
// unexpected errors.
type harness struct {
	b     storage.Backend
	clock *fakeClock
	ctx   context.Context
}

func (h *harness) put(t *testing.T, key, value string) storage.Item {
	t.Helper()
	it, err := h.b.Put(h.ctx, storage.Item{Key: key, Value: []byte(value)})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return it
}

func (h *harness) putTTL(t *testing.T, key, value string, ttl time.Duration) storage.Item {
	t.Helper()
	it, err := h.b.Put(h.ctx, storage.Item{Key: key, Value: []byte(value), Expires: h.clock.Now().Add(ttl)})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return it
}

func (h *harness) get(t *testing.T, key string) storage.Item {
	t.Helper()
	it, err := h.b.Get(h.ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return it
}

func (h *harness) del(t *testing.T, key string) {
	t.Helper()
	if err := h.b.Delete(h.ctx, key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
}

func (h *harness) keys(t *testing.T, prefix string, limit int) []string {
	t.Helper()
	items, err := h.b.Range(h.ctx, prefix, limit)
	if err != nil {
		t.Fatalf("Range(%q, %d): %v", prefix, limit, err)
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return keys
}

func (h *harness) watch(t *testing.T, prefix string) storage.Watcher {
	t.Helper()
	w, err := h.b.Watch(h.ctx, prefix)
	if err != nil {
		t.Fatalf("Watch(%q): %v", prefix, err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func (h *harness) wantNotFound(t *testing.T, key string) {
	t.Helper()
	_, err := h.b.Get(h.ctx, key)
	wantNotFound(t, err, key)
}

func wantNotFound(t *testing.T, err error, key string) {
	t.Helper()
	var nf *storage.NotFoundError
	if !errors.As(err, &nf) || !storage.IsNotFound(err) {
		t.Fatalf("got error %v, want a *storage.NotFoundError for %q", err, key)
	}
	if nf.Key != key {
		t.Fatalf("NotFoundError.Key = %q, want %q", nf.Key, key)
	}
}

// wantItem checks got's key, value and expiry (not its revision).
func wantItem(t *testing.T, got storage.Item, key, value string, expires time.Time) {
	t.Helper()
	if got.Key != key || string(got.Value) != value || !got.Expires.Equal(expires) {
		t.Fatalf("got item {%q, %q, expires %v}, want {%q, %q, expires %v}",
			got.Key, got.Value, got.Expires, key, value, expires)
	}
}

// nextEvent returns the watcher's next event, failing the test if the
// watcher ends or nothing arrives within EventTimeout.
func nextEvent(t *testing.T, w storage.Watcher) storage.Event {
	t.Helper()
	timer := time.NewTimer(EventTimeout)
	defer timer.Stop()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watcher ended (Err: %v) while an event was expected", w.Err())
		}
		return ev
	case <-timer.C:
		t.Fatalf("no event within %s", EventTimeout)
	}
	panic("unreachable")
}

func wantEvent(t *testing.T, w storage.Watcher, typ storage.EventType, key string, rev int64) storage.Event {
	t.Helper()
	ev := nextEvent(t, w)
	if ev.Type != typ || ev.Item.Key != key || (rev != 0 && ev.Item.Revision != rev) {
		t.Fatalf("got event %v %q rev %d, want %v %q rev %d", ev.Type, ev.Item.Key, ev.Item.Revision, typ, key, rev)
	}
	return ev
}

// waitEnded waits for the watcher to end, drains Events (which must then be
// closed) and returns Err.
func waitEnded(t *testing.T, w storage.Watcher) error {
	t.Helper()
	timer := time.NewTimer(EventTimeout)
	defer timer.Stop()
	select {
	case <-w.Done():
	case <-timer.C:
		t.Fatalf("watcher did not end within %s", EventTimeout)
	}
	for {
		select {
		case _, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
		case <-timer.C:
			t.Fatalf("Events was not closed within %s of Done", EventTimeout)
		}
	}
}
