package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/portcullis-db/portcullis/ca/storage"
	"github.com/portcullis-db/portcullis/ca/storage/storagetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	storagetest.RunBackendTests(t, func(t *testing.T, clock func() time.Time) storage.Backend {
		// A short interval so that the background sweeper runs
		// alongside the suite's explicit sweeps.
		return openTest(t, filepath.Join(t.TempDir(), "state.db"), Options{Clock: clock, SweepInterval: 20 * time.Millisecond})
	})
}

func openTest(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testClock is a clock the test sets.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recv returns w's next event; the timeout only bounds a hang.
func recv(t *testing.T, w storage.Watcher) storage.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watcher ended: %v", w.Err())
		}
		return ev
	case <-time.After(storagetest.EventTimeout):
		t.Fatal("no event")
	}
	panic("unreachable")
}

func TestPersistence(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "data", "state.db") // the directory is created
	clock := newTestClock()
	opts := Options{Clock: clock.Now, SweepInterval: -1}

	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Put(ctx, storage.Item{Key: "users/alice", Value: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := s.Put(ctx, storage.Item{Key: "inventory/db/h/pg", Value: []byte("pg"), Expires: clock.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path, opts)
	got, err := s.Get(ctx, "users/alice")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != "alice" || got.Revision != a.Revision {
		t.Fatalf("after reopen got %q rev %d, want %q rev %d", got.Value, got.Revision, "alice", a.Revision)
	}
	got, err = s.Get(ctx, tmp.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Expires.Equal(tmp.Expires) {
		t.Fatalf("expiry after reopen %v, want %v", got.Expires, tmp.Expires)
	}

	// The revision counter continues where it was.
	b, err := s.Put(ctx, storage.Item{Key: "users/bob", Value: []byte("bob")})
	if err != nil {
		t.Fatal(err)
	}
	if b.Revision <= tmp.Revision {
		t.Fatalf("revision after reopen %d, not after %d", b.Revision, tmp.Revision)
	}

	// The expiry index survived too.
	clock.Advance(time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep after reopen = %d, %v; want 1, nil", n, err)
	}
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	openTest(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("file mode %v, want 0600", perm)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	openTest(t, path, Options{})
	// flock locks belong to the open file, so a second Open in the same
	// process conflicts just as another process would.
	s, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("second Open of the same file succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another Auth service") {
		t.Fatalf("error %q does not say the data dir is in use", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a bolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		path string
		opts Options
		want string
	}{
		"empty path":            {"", Options{}, "path is empty"},
		"negative lock":         {filepath.Join(dir, "a.db"), Options{LockTimeout: -1}, "Options.LockTimeout"},
		"negative buffer":       {filepath.Join(dir, "a.db"), Options{WatchBuffer: -1}, "Options.WatchBuffer"},
		"not a bolt file":       {garbage, Options{}, "cannot open"},
		"directory as the file": {dir, Options{}, "cannot open"},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Open(c.path, c.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestWatchOverflow(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "state.db"), Options{WatchBuffer: 2})
	slow, err := s.Watch(ctx, "k/")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	var revs []int64
	for _, k := range []string{"k/1", "k/2", "k/3", "k/4"} {
		// Never blocks, although nobody reads.
		it, err := s.Put(ctx, storage.Item{Key: k})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, it.Revision)
	}
	<-slow.Done()
	if err := slow.Err(); !errors.Is(err, storage.ErrWatcherOverflow) {
		t.Fatalf("Err = %v, want ErrWatcherOverflow", err)
	}
	// The buffered events are still delivered, then Events is closed.
	var got []int64
	for ev := range slow.Events() {
		got = append(got, ev.Item.Revision)
	}
	if len(got) != 2 || got[0] != revs[0] || got[1] != revs[1] {
		t.Fatalf("buffered events %v, want the first two of %v", got, revs)
	}

	// A new watcher works.
	w, err := s.Watch(ctx, "k/")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	it, err := s.Put(ctx, storage.Item{Key: "k/5"})
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-w.Events(); ev.Item.Revision != it.Revision {
		t.Fatalf("new watcher got revision %d, want %d", ev.Item.Revision, it.Revision)
	}
}

func TestBackgroundSweep(t *testing.T) {
	ctx := t.Context()
	clock := newTestClock()
	s := openTest(t, filepath.Join(t.TempDir(), "state.db"), Options{Clock: clock.Now, SweepInterval: 5 * time.Millisecond})
	w, err := s.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.Put(ctx, storage.Item{Key: k, Expires: clock.Now().Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		recv(t, w)
	}
	clock.Advance(time.Second)
	// The sweeper, not this test, deletes them; their order is key
	// order within one expiry time.
	for _, k := range []string{"a", "b", "c"} {
		ev := recv(t, w)
		if ev.Type != storage.EventDelete || ev.Item.Key != k {
			t.Fatalf("got %v %q, want delete %q", ev.Type, ev.Item.Key, k)
		}
	}
}

// TestSweepBatches expires more items than one sweep transaction deletes.
func TestSweepBatches(t *testing.T) {
	ctx := t.Context()
	clock := newTestClock()
	s := openTest(t, filepath.Join(t.TempDir(), "state.db"), Options{Clock: clock.Now, SweepInterval: -1})
	const n = sweepBatch*2 + 7
	for i := range n {
		exp := clock.Now().Add(time.Duration(i%5+1) * time.Second)
		if _, err := s.Put(ctx, storage.Item{Key: fmt.Sprintf("inv/%04d", i), Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	keep, err := s.Put(ctx, storage.Item{Key: "inv/keep", Expires: clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Second)
	got, err := s.Sweep(ctx)
	if err != nil || got != n {
		t.Fatalf("Sweep = %d, %v; want %d, nil", got, err, n)
	}
	items, err := s.Range(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Key != keep.Key {
		t.Fatalf("after sweep %d items remain, want only %s", len(items), keep.Key)
	}
	// The index holds only the surviving item.
	if err := s.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketExpiry).Stats().KeyN; n != 1 {
			t.Errorf("expiry index has %d entries, want 1", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestWatchContextCancelledLate(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "state.db"), Options{})
	ctx, cancel := context.WithCancel(t.Context())
	w, err := s.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	cancel() // after Close: no effect, no leak
	<-w.Done()
	if err := w.Err(); err != nil {
		t.Fatalf("Err = %v, want nil", err)
	}
}
