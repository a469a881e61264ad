package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/portcullis-db/portcullis/ca/storage"
)

// Defaults for the zero values of [Options].
const (
	DefaultSweepInterval = 5 * time.Second
	DefaultLockTimeout   = time.Second
	DefaultWatchBuffer   = 1024
)

// fileFormat is the layout version kept in the meta bucket.
const fileFormat = 1

var (
	bucketMeta   = []byte("meta")
	bucketItems  = []byte("items")
	bucketExpiry = []byte("expiry")

	metaFormat   = []byte("format")
	metaRevision = []byte("revision")
)

// Options configure a [Store]. The zero value is ready to use.
type Options struct {
	// Clock returns the current time, against which item expiry is
	// checked. Nil means time.Now.
	Clock func() time.Time
	// SweepInterval is how often the background sweeper deletes expired
	// items (and emits their delete events). Zero means
	// DefaultSweepInterval; a negative value turns the background sweeper
	// off (call Store.Sweep yourself).
	SweepInterval time.Duration
	// LockTimeout is how long Open waits for another process to release
	// the file before failing. Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// WatchBuffer is how many events each watcher buffers; a watcher that
	// falls further behind is closed with storage.ErrWatcherOverflow. Zero
	// means DefaultWatchBuffer.
	WatchBuffer int
}

// A Store is a [storage.Backend] in one bbolt file. It also implements
// [storage.Sweeper]. Its methods are safe for concurrent use.
type Store struct {
	db    *bolt.DB
	path  string
	clock func() time.Time
	fan   *fanout

	// writeMu spans each write transaction and the publication of its
	// events, so that watchers see events in revision order. (bbolt
	// serializes writers anyway; this only extends the critical section
	// over the non-blocking fan-out.)
	writeMu sync.Mutex

	closed    atomic.Bool
	stopSweep context.CancelFunc
	sweepDone chan struct{}
}

var (
	_ storage.Backend = (*Store)(nil)
	_ storage.Sweeper = (*Store)(nil)
)

// Open opens the store in the file at path, creating the file (mode 0600)
// and its directory (mode 0700) if they do not exist. Only one process can
// have the file open; Open fails after opts.LockTimeout if another one does.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("boltstore: the path is empty; pass the file in the Auth service's data dir, e.g. <data dir>/state.db")
	}
	if opts.LockTimeout < 0 {
		return nil, fmt.Errorf("boltstore: Options.LockTimeout is negative (%s); use 0 for the default", opts.LockTimeout)
	}
	if opts.WatchBuffer < 0 {
		return nil, fmt.Errorf("boltstore: Options.WatchBuffer is negative (%d); use 0 for the default", opts.WatchBuffer)
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	lockTimeout := orDefault(opts.LockTimeout, DefaultLockTimeout)
	sweepInterval := orDefault(opts.SweepInterval, DefaultSweepInterval)
	watchBuffer := orDefault(opts.WatchBuffer, DefaultWatchBuffer)

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: cannot create the data dir: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      lockTimeout,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: the data dir %s is in use by another Auth service (%s stayed locked for %s); stop the other service or use another data dir", dir, path, lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: cannot open %s (is it a Portcullis state file?): %w", path, err)
	}
	if err := initBuckets(db, path); err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{
		db:        db,
		path:      path,
		clock:     clock,
		fan:       newFanout(watchBuffer),
		sweepDone: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopSweep = cancel
	if sweepInterval > 0 {
		go s.sweepLoop(ctx, sweepInterval)
	} else {
		close(s.sweepDone)
	}
	return s, nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func initBuckets(db *bolt.DB, path string) error {
	err := db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if f := meta.Get(metaFormat); f == nil {
			if err := meta.Put(metaFormat, []byte{fileFormat}); err != nil {
				return err
			}
		} else if len(f) != 1 || f[0] != fileFormat {
			return fmt.Errorf("boltstore: %s has file format %v, which this build cannot read; use the Portcullis version that wrote it", path, f)
		}
		for _, b := range [][]byte{bucketItems, bucketExpiry} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore: cannot initialize %s: %w", path, err)
	}
	return nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Close stops the sweeper, ends every watcher with storage.ErrClosed and
// closes the file. It waits for operations in progress.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.stopSweep()
	<-s.sweepDone
	s.fan.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: closing %s: %w", s.path, err)
	}
	return nil
}

// Get implements storage.Backend.
func (s *Store) Get(ctx context.Context, key string) (storage.Item, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Item{}, err
	}
	var item storage.Item
	err := s.view(ctx, func(tx *bolt.Tx) error {
		e, ok, err := getEnvelope(tx.Bucket(bucketItems), key)
		if err != nil {
			return err
		}
		if !ok || !live(e.expires, s.clock()) {
			return &storage.NotFoundError{Key: key}
		}
		item = e.item(key)
		return nil
	})
	return item, err
}

// Put implements storage.Backend.
func (s *Store) Put(ctx context.Context, item storage.Item) (storage.Item, error) {
	if err := storage.ValidateKey(item.Key); err != nil {
		return storage.Item{}, err
	}
	err := s.update(ctx, func(w *writeTx) error {
		item = w.put(item)
		return nil
	})
	return item, err
}

// Create implements storage.Backend.
func (s *Store) Create(ctx context.Context, item storage.Item) (storage.Item, error) {
	if err := storage.ValidateKey(item.Key); err != nil {
		return storage.Item{}, err
	}
	err := s.update(ctx, func(w *writeTx) error {
		_, ok, err := w.getLive(item.Key)
		if err != nil {
			return err
		}
		if ok {
			return &storage.AlreadyExistsError{Key: item.Key}
		}
		item = w.put(item)
		return nil
	})
	return item, err
}

// CompareAndSwap implements storage.Backend.
func (s *Store) CompareAndSwap(ctx context.Context, expectedRevision int64, item storage.Item) (storage.Item, error) {
	if err := storage.ValidateKey(item.Key); err != nil {
		return storage.Item{}, err
	}
	err := s.update(ctx, func(w *writeTx) error {
		e, ok, err := w.getLive(item.Key)
		if err != nil {
			return err
		}
		var current int64
		if ok {
			current = e.revision
		}
		if current != expectedRevision {
			return &storage.CompareFailedError{Key: item.Key, Expected: expectedRevision}
		}
		item = w.put(item)
		return nil
	})
	return item, err
}

// Delete implements storage.Backend.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	return s.update(ctx, func(w *writeTx) error {
		e, ok, err := w.getLive(key)
		if err != nil {
			return err
		}
		if !ok {
			return &storage.NotFoundError{Key: key}
		}
		w.delete(key, e)
		return nil
	})
}

// Range implements storage.Backend.
func (s *Store) Range(ctx context.Context, prefix string, limit int) ([]storage.Item, error) {
	if err := storage.ValidateLimit(limit); err != nil {
		return nil, err
	}
	var items []storage.Item
	err := s.view(ctx, func(tx *bolt.Tx) error {
		now := s.clock()
		p := []byte(prefix)
		c := tx.Bucket(bucketItems).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			e, err := decodeEnvelope(v)
			if err != nil {
				return corrupt(string(k), err)
			}
			if !live(e.expires, now) {
				continue
			}
			items = append(items, e.item(string(k)))
			if limit > 0 && len(items) == limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// Watch implements storage.Backend.
func (s *Store) Watch(ctx context.Context, prefix string) (storage.Watcher, error) {
	if s.closed.Load() {
		return nil, storage.ErrClosed
	}
	w, err := s.fan.watch(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return closedErr(s.db.View(fn))
}

// update runs fn in a write transaction and, once it has committed,
// publishes its events.
func (s *Store) update(ctx context.Context, fn func(*writeTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return storage.ErrClosed
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var events []storage.Event
	err := s.db.Update(func(tx *bolt.Tx) error {
		w, err := beginWrite(tx, s.clock())
		if err != nil {
			return err
		}
		if err := fn(w); err != nil {
			return err
		}
		if err := w.commit(); err != nil {
			return err
		}
		events = w.events
		return nil
	})
	if err != nil {
		return closedErr(err)
	}
	s.fan.publish(events)
	return nil
}

// closedErr turns bbolt's error for a closed database into storage.ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return storage.ErrClosed
	}
	return err
}

func corrupt(key string, err error) error {
	return fmt.Errorf("boltstore: the stored item at key %q is corrupt (%w); restore the data dir from a backup", key, err)
}

// getEnvelope returns the item at key, live or expired. The envelope's value
// is only valid during the transaction.
func getEnvelope(b *bolt.Bucket, key string) (envelope, bool, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return envelope{}, false, nil
	}
	e, err := decodeEnvelope(v)
	if err != nil {
		return envelope{}, false, corrupt(key, err)
	}
	return e, true, nil
}

// item copies e out of the transaction as the item at key.
func (e envelope) item(key string) storage.Item {
	return storage.Item{
		Key:      key,
		Value:    bytes.Clone(e.value),
		Expires:  e.expires,
		Revision: e.revision,
	}
}

// writeTx is one write transaction: it hands out revisions, keeps the
// expiry index in step with the items and collects the events to publish.
type writeTx struct {
	now    time.Time // what expiry is checked against
	meta   *bolt.Bucket
	items  *bolt.Bucket
	expiry *bolt.Bucket
	rev    int64 // the last revision handed out
	err    error // the first error from a bucket write
	events []storage.Event
}

func beginWrite(tx *bolt.Tx, now time.Time) (*writeTx, error) {
	w := &writeTx{
		now:    now,
		meta:   tx.Bucket(bucketMeta),
		items:  tx.Bucket(bucketItems),
		expiry: tx.Bucket(bucketExpiry),
	}
	if v := w.meta.Get(metaRevision); v != nil {
		if len(v) != 8 {
			return nil, fmt.Errorf("boltstore: the revision counter is corrupt (%d bytes); restore the data dir from a backup", len(v))
		}
		w.rev = int64(binary.BigEndian.Uint64(v))
	}
	return w, nil
}

func (w *writeTx) nextRevision() int64 {
	w.rev++
	return w.rev
}

// getLive returns the live item at key.
func (w *writeTx) getLive(key string) (envelope, bool, error) {
	e, ok, err := getEnvelope(w.items, key)
	if err != nil || !ok || !live(e.expires, w.now) {
		return envelope{}, false, err
	}
	return e, true, nil
}

// put stores item under a new revision, replacing any item at its key, and
// returns it as stored.
func (w *writeTx) put(item storage.Item) storage.Item {
	w.unindex(item.Key)
	item.Revision = w.nextRevision()
	if !item.Expires.IsZero() {
		item.Expires = time.Unix(item.Expires.Unix(), int64(item.Expires.Nanosecond())).UTC()
		w.check(w.expiry.Put(expiryKey(item.Expires, item.Key), []byte{}))
	}
	w.check(w.items.Put([]byte(item.Key), encodeEnvelope(item.Revision, item.Expires, item.Value)))
	ev := item
	ev.Value = bytes.Clone(item.Value) // the caller may reuse its slice while the event is queued
	w.events = append(w.events, storage.Event{Type: storage.EventPut, Item: ev})
	return item
}

// delete removes the item e at key under a new revision.
func (w *writeTx) delete(key string, e envelope) {
	if !e.expires.IsZero() {
		w.check(w.expiry.Delete(expiryKey(e.expires, key)))
	}
	w.deleteItem(key)
}

// deleteItem removes the item at key, but not its expiry index entry,
// under a new revision.
func (w *writeTx) deleteItem(key string) {
	w.check(w.items.Delete([]byte(key)))
	w.events = append(w.events, storage.Event{
		Type: storage.EventDelete,
		Item: storage.Item{Key: key, Revision: w.nextRevision()},
	})
}

// unindex removes the expiry index entry of the item at key, if any.
func (w *writeTx) unindex(key string) {
	e, ok, err := getEnvelope(w.items, key)
	if err != nil || !ok {
		// A corrupt item is overwritten; its index entry, if any, is
		// dropped by the sweeper when it finds no matching item.
		return
	}
	if !e.expires.IsZero() {
		w.check(w.expiry.Delete(expiryKey(e.expires, key)))
	}
}

func (w *writeTx) check(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

// commit stores the revision counter; bbolt commits when update returns.
func (w *writeTx) commit() error {
	if w.err != nil {
		return fmt.Errorf("boltstore: write failed: %w", w.err)
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(w.rev))
	return w.meta.Put(metaRevision, b[:])
}
