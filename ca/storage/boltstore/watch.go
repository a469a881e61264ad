package boltstore

import (
	"context"
	"strings"
	"sync"

	"github.com/portcullis-db/portcullis/ca/storage"
)

// fanout delivers committed events to in-process watchers. Nothing in it
// depends on bbolt: a backend for a shared database can fan out the events
// it reads from its change feed the same way.
type fanout struct {
	buffer int

	mu       sync.Mutex
	closed   bool
	watchers map[*watcher]struct{}
}

func newFanout(buffer int) *fanout {
	return &fanout{buffer: buffer, watchers: make(map[*watcher]struct{})}
}

// watch registers a watcher for prefix. Every event published after watch
// returns reaches it (or overflows it).
func (f *fanout) watch(ctx context.Context, prefix string) (*watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &watcher{
		f:      f,
		prefix: prefix,
		events: make(chan storage.Event, f.buffer),
		done:   make(chan struct{}),
	}
	// AfterFunc runs no goroutine until ctx is done; endLocked releases it
	// when the watcher ends first. It is set under w.mu because its
	// function may already be running.
	w.mu.Lock()
	w.stop = context.AfterFunc(ctx, func() { w.end(ctx.Err()) })
	w.mu.Unlock()

	f.mu.Lock()
	defer f.mu.Unlock()
	w.mu.Lock()
	if f.closed {
		w.endLocked(storage.ErrClosed) // not w.end: we hold f.mu
		w.mu.Unlock()
		return nil, storage.ErrClosed
	}
	if !w.ended { // ctx may have been cancelled meanwhile
		f.watchers[w] = struct{}{}
	}
	w.mu.Unlock()
	return w, nil
}

// publish delivers events, in order, to every watcher whose prefix matches.
// It never blocks: a watcher whose buffer is full is ended with
// storage.ErrWatcherOverflow. Callers serialize publish calls in commit order.
func (f *fanout) publish(events []storage.Event) {
	if len(events) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.watchers {
		for _, ev := range events {
			if !strings.HasPrefix(ev.Item.Key, w.prefix) {
				continue
			}
			if !w.send(ev) {
				delete(f.watchers, w)
				break
			}
		}
	}
}

// close ends every watcher with storage.ErrClosed and refuses new ones.
func (f *fanout) close() {
	f.mu.Lock()
	f.closed = true
	ws := f.watchers
	f.watchers = nil
	f.mu.Unlock()
	for w := range ws {
		w.end(storage.ErrClosed)
	}
}

func (f *fanout) remove(w *watcher) {
	f.mu.Lock()
	delete(f.watchers, w)
	f.mu.Unlock()
}

// watcher implements storage.Watcher.
type watcher struct {
	f      *fanout
	prefix string
	events chan storage.Event
	done   chan struct{}
	stop   func() bool // releases the context.AfterFunc

	mu    sync.Mutex
	ended bool
	err   error
}

func (w *watcher) Events() <-chan storage.Event { return w.events }
func (w *watcher) Done() <-chan struct{}        { return w.done }

func (w *watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *watcher) Close() error {
	w.end(nil)
	return nil
}

// send queues ev without blocking. If the buffer is full it ends the watcher
// with storage.ErrWatcherOverflow. It reports whether the watcher is still
// running. The caller holds f.mu.
func (w *watcher) send(ev storage.Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return false
	}
	select {
	case w.events <- ev:
		return true
	default:
		w.endLocked(storage.ErrWatcherOverflow)
		return false
	}
}

// end ends the watcher with err (nil: closed by its consumer) unless it has
// ended already, and unregisters it.
func (w *watcher) end(err error) {
	w.mu.Lock()
	first := !w.ended
	w.endLocked(err)
	w.mu.Unlock()
	if first {
		w.f.remove(w)
	}
}

func (w *watcher) endLocked(err error) {
	if w.ended {
		return
	}
	w.ended = true
	w.err = err
	close(w.events)
	close(w.done)
	if w.stop != nil {
		w.stop()
	}
}
