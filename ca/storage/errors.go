package storage

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by every method of a [Backend] after Close, and by
// [Watcher.Err] for a watcher that ended because its backend was closed.
var ErrClosed = errors.New("storage: the storage backend is closed")

// ErrWatcherOverflow is returned by [Watcher.Err] for a watcher that fell so
// far behind that its buffer filled up; events were lost, so the consumer must
// read the state again with Range and watch again.
var ErrWatcherOverflow = errors.New("storage: the watcher fell behind and was closed; read the state again with Range and start a new watcher")

// A NotFoundError says that a key has no live item.
type NotFoundError struct {
	Key string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("storage: there is no item at key %q", e.Key)
}

// An AlreadyExistsError says that Create found a live item at its key.
type AlreadyExistsError struct {
	Key string
}

func (e *AlreadyExistsError) Error() string {
	return fmt.Sprintf("storage: an item already exists at key %q", e.Key)
}

// A CompareFailedError says that CompareAndSwap found the item at Key changed
// (or absent, or present when Expected is 0); the caller should read it again
// and retry.
type CompareFailedError struct {
	Key      string
	Expected int64 // the revision the caller expected
}

func (e *CompareFailedError) Error() string {
	if e.Expected == 0 {
		return fmt.Sprintf("storage: an item already exists at key %q; read it and retry with its revision", e.Key)
	}
	return fmt.Sprintf("storage: the item at key %q is no longer at revision %d; read it again and retry", e.Key, e.Expected)
}

// IsNotFound reports whether err is or wraps a [*NotFoundError].
func IsNotFound(err error) bool {
	var e *NotFoundError
	return errors.As(err, &e)
}

// IsAlreadyExists reports whether err is or wraps an [*AlreadyExistsError].
func IsAlreadyExists(err error) bool {
	var e *AlreadyExistsError
	return errors.As(err, &e)
}

// IsCompareFailed reports whether err is or wraps a [*CompareFailedError].
func IsCompareFailed(err error) bool {
	var e *CompareFailedError
	return errors.As(err, &e)
}
