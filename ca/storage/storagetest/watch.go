package storagetest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/portcullis-db/portcullis/ca/storage"
)

func testWatch(t *testing.T, h *harness) {
	w := h.watch(t, "users/")
	h.put(t, "roles/r", "not watched")
	h.put(t, "users", "not watched either")
	a := h.put(t, "users/alice", "a1")
	b, err := h.b.Create(h.ctx, storage.Item{Key: "users/bob", Value: []byte("b1")})
	if err != nil {
		t.Fatal(err)
	}
	h.del(t, "users/alice")
	b2, err := h.b.CompareAndSwap(h.ctx, b.Revision, storage.Item{Key: "users/bob", Value: []byte("b2")})
	if err != nil {
		t.Fatal(err)
	}
	// Failed writes emit nothing.
	if _, err := h.b.Create(h.ctx, storage.Item{Key: "users/bob"}); err == nil {
		t.Fatal("Create over a live item succeeded")
	}
	if err := h.b.Delete(h.ctx, "users/alice"); err == nil {
		t.Fatal("Delete of a deleted item succeeded")
	}
	h.put(t, "roles/s", "not watched")
	c := h.put(t, "users/carol", "c1")

	ev := wantEvent(t, w, storage.EventPut, "users/alice", a.Revision)
	wantItem(t, ev.Item, "users/alice", "a1", a.Expires)
	ev = wantEvent(t, w, storage.EventPut, "users/bob", b.Revision)
	wantItem(t, ev.Item, "users/bob", "b1", b.Expires)
	del := wantEvent(t, w, storage.EventDelete, "users/alice", 0)
	if del.Item.Revision <= b.Revision || del.Item.Revision >= b2.Revision {
		t.Fatalf("delete event revision %d, want between %d and %d", del.Item.Revision, b.Revision, b2.Revision)
	}
	ev = wantEvent(t, w, storage.EventPut, "users/bob", b2.Revision)
	wantItem(t, ev.Item, "users/bob", "b2", b2.Expires)
	wantEvent(t, w, storage.EventPut, "users/carol", c.Revision)
	if err := w.Err(); err != nil {
		t.Fatalf("Err of a running watcher = %v", err)
	}
}

func testWatchSeveral(t *testing.T, h *harness) {
	all := h.watch(t, "")
	users := h.watch(t, "users/")
	roles := h.watch(t, "roles/")
	u := h.put(t, "users/u", "u")
	r := h.put(t, "roles/r", "r")
	u2 := h.put(t, "users/u", "u2")

	wantEvent(t, all, storage.EventPut, "users/u", u.Revision)
	wantEvent(t, all, storage.EventPut, "roles/r", r.Revision)
	wantEvent(t, all, storage.EventPut, "users/u", u2.Revision)
	wantEvent(t, users, storage.EventPut, "users/u", u.Revision)
	wantEvent(t, users, storage.EventPut, "users/u", u2.Revision)
	wantEvent(t, roles, storage.EventPut, "roles/r", r.Revision)

	// Closing one watcher leaves the others running.
	users.Close()
	r2 := h.put(t, "roles/r", "r2")
	wantEvent(t, all, storage.EventPut, "roles/r", r2.Revision)
	wantEvent(t, roles, storage.EventPut, "roles/r", r2.Revision)
}

func testWatchClose(t *testing.T, h *harness) {
	w := h.watch(t, "k/")
	h.put(t, "k/1", "x")
	if err := w.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := waitEnded(t, w); err != nil {
		t.Fatalf("Err after Close = %v, want nil", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	// Writes after the watcher is closed must not block or panic.
	h.put(t, "k/2", "y")
	h.del(t, "k/1")
}

func testWatchContext(t *testing.T, h *harness) {
	ctx, cancel := context.WithCancel(h.ctx)
	w, err := h.b.Watch(ctx, "k/")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := h.put(t, "k/1", "x")
	wantEvent(t, w, storage.EventPut, "k/1", p.Revision)
	cancel()
	if err := waitEnded(t, w); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after the context was cancelled = %v, want context.Canceled", err)
	}
	h.put(t, "k/2", "y")
}

func testCloseBackend(t *testing.T, h *harness) {
	w := h.watch(t, "")
	h.put(t, "k/1", "x")
	if err := h.b.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := waitEnded(t, w); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("watcher Err after the backend closed = %v, want ErrClosed", err)
	}
	if err := h.b.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", op, err)
		}
	}
	_, err := h.b.Get(h.ctx, "k/1")
	check("Get", err)
	_, err = h.b.Put(h.ctx, storage.Item{Key: "k/2"})
	check("Put", err)
	_, err = h.b.Create(h.ctx, storage.Item{Key: "k/2"})
	check("Create", err)
	_, err = h.b.CompareAndSwap(h.ctx, 0, storage.Item{Key: "k/2"})
	check("CompareAndSwap", err)
	check("Delete", h.b.Delete(h.ctx, "k/1"))
	_, err = h.b.Range(h.ctx, "", 0)
	check("Range", err)
	_, err = h.b.Watch(h.ctx, "")
	check("Watch", err)
}

// testConcurrentCompareAndSwap increments a counter from several goroutines
// with read-modify-write loops; no increment may be lost, and a watcher sees
// every write once, in revision order.
func testConcurrentCompareAndSwap(t *testing.T, h *harness) {
	const (
		workers    = 8
		increments = 25
		key        = "counters/c"
	)
	w := h.watch(t, "counters/")
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range increments {
				if err := increment(h.ctx, h.b, key); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := string(h.get(t, key).Value); got != strconv.Itoa(workers*increments) {
		t.Fatalf("counter = %s, want %d", got, workers*increments)
	}
	var last int64
	for i := 1; i <= workers*increments; i++ {
		ev := wantEvent(t, w, storage.EventPut, key, 0)
		if ev.Item.Revision <= last {
			t.Fatalf("event %d has revision %d after %d", i, ev.Item.Revision, last)
		}
		if string(ev.Item.Value) != strconv.Itoa(i) {
			t.Fatalf("event %d has value %s", i, ev.Item.Value)
		}
		last = ev.Item.Revision
	}
}

// testWatchOrderConcurrentPuts writes distinct keys from several goroutines;
// a watcher must see every write exactly once, in revision order.
func testWatchOrderConcurrentPuts(t *testing.T, h *harness) {
	const (
		workers = 8
		puts    = 25
	)
	w := h.watch(t, "")
	var wg sync.WaitGroup
	revs := make(chan int64, workers*puts)
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			for j := range puts {
				key := "w" + strconv.Itoa(i) + "/" + strconv.Itoa(j)
				it, err := h.b.Put(h.ctx, storage.Item{Key: key, Value: []byte(key)})
				if err != nil {
					errs <- err
					return
				}
				revs <- it.Revision
			}
		})
	}
	wg.Wait()
	close(errs)
	close(revs)
	for err := range errs {
		t.Fatal(err)
	}
	written := make(map[int64]bool)
	for r := range revs {
		written[r] = true
	}
	var last int64
	for i := range workers * puts {
		ev := nextEvent(t, w)
		if ev.Type != storage.EventPut || string(ev.Item.Value) != ev.Item.Key {
			t.Fatalf("event %d: %v %q = %q", i, ev.Type, ev.Item.Key, ev.Item.Value)
		}
		if ev.Item.Revision <= last {
			t.Fatalf("event %d has revision %d after %d: events out of revision order", i, ev.Item.Revision, last)
		}
		if !written[ev.Item.Revision] {
			t.Fatalf("event %d has revision %d, which no Put returned", i, ev.Item.Revision)
		}
		last = ev.Item.Revision
	}
}

// increment adds 1 to the decimal counter at key, retrying on conflicts.
func increment(ctx context.Context, b storage.Backend, key string) error {
	for {
		var rev int64
		n := 0
		it, err := b.Get(ctx, key)
		switch {
		case storage.IsNotFound(err):
		case err != nil:
			return err
		default:
			rev = it.Revision
			if n, err = strconv.Atoi(string(it.Value)); err != nil {
				return err
			}
		}
		_, err = b.CompareAndSwap(ctx, rev, storage.Item{Key: key, Value: []byte(strconv.Itoa(n + 1))})
		if !storage.IsCompareFailed(err) {
			return err
		}
	}
}
