package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxKeyLen is the longest key, in bytes, that [ValidateKey] accepts.
const MaxKeyLen = 1024

// An Item is one key with its value.
type Item struct {
	// Key is a slash-separated path, e.g. "users/alice".
	Key string
	// Value is opaque to the backend. It may come back nil for an empty value.
	Value []byte
	// Expires is when the item stops being visible. Zero means never.
	Expires time.Time
	// Revision is set by the backend on every write; the caller's value is
	// ignored by Put, Create and CompareAndSwap.
	Revision int64
}

// A Backend stores the Auth service's state. See the package documentation
// for the semantics every implementation shares. All methods are safe for
// concurrent use.
type Backend interface {
	// Get returns the live item at key, or a [*NotFoundError].
	Get(ctx context.Context, key string) (Item, error)
	// Put stores item, replacing any item at its key, and returns it with
	// its new revision.
	Put(ctx context.Context, item Item) (Item, error)
	// Create stores item only if its key has no live item; otherwise it
	// returns an [*AlreadyExistsError].
	Create(ctx context.Context, item Item) (Item, error)
	// CompareAndSwap stores item only if the live item at its key has
	// revision expectedRevision (0: only if there is no live item);
	// otherwise it returns a [*CompareFailedError].
	CompareAndSwap(ctx context.Context, expectedRevision int64, item Item) (Item, error)
	// Delete removes the live item at key, or returns a [*NotFoundError].
	Delete(ctx context.Context, key string) error
	// Range returns the live items whose keys start with prefix, sorted by
	// key, at most limit of them (0: all). The prefix is a plain string
	// prefix: Range("users/") returns "users/a" and "users/ab" but not
	// "users" or "usersx"; Range("") returns everything.
	Range(ctx context.Context, prefix string, limit int) ([]Item, error)
	// Watch returns a watcher for writes to keys that start with prefix.
	// The watcher ends when ctx is done, when it is closed or when the
	// backend is closed.
	Watch(ctx context.Context, prefix string) (Watcher, error)
	// Close releases the backend and ends every watcher with [ErrClosed].
	// Later calls to any method return [ErrClosed]; later calls to Close
	// return nil.
	Close() error
}

// A Sweeper is a [Backend] that can delete expired items on demand, in
// addition to its own schedule. Sweep returns how many items it deleted; each
// deletion is a write with its own revision and [EventDelete].
type Sweeper interface {
	Sweep(ctx context.Context) (int, error)
}

// ValidateKey reports whether key can be stored: it must be non-empty, at most
// [MaxKeyLen] bytes, valid UTF-8 and free of NUL bytes (so that every backend,
// including PostgreSQL text columns, can hold it).
func ValidateKey(key string) error {
	switch {
	case key == "":
		return errors.New("storage: the key is empty; use a slash-separated path such as \"users/alice\"")
	case len(key) > MaxKeyLen:
		return fmt.Errorf("storage: the key %.40q... is %d bytes long; keys are limited to %d bytes", key, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("storage: the key %q is not valid UTF-8; use UTF-8 keys", key)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("storage: the key %q contains a NUL byte, which no backend can store", key)
	}
	return nil
}

// ValidateLimit reports whether limit is a valid Range limit (not negative).
func ValidateLimit(limit int) error {
	if limit < 0 {
		return fmt.Errorf("storage: range limit %d is negative; use 0 for no limit", limit)
	}
	return nil
}
