package storage

import "fmt"

// EventType says what kind of write an [Event] reports.
type EventType int

const (
	// EventPut reports a Put, Create or CompareAndSwap: Event.Item is the
	// item as stored, with its new revision.
	EventPut EventType = iota + 1
	// EventDelete reports a Delete or the sweep of an expired item:
	// Event.Item has only Key and Revision (the deletion's revision).
	EventDelete
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// An Event is one committed write seen by a [Watcher].
type Event struct {
	Type EventType
	Item Item
}

// A Watcher delivers the events of one Watch call. See the package
// documentation for ordering and for what happens when a watcher falls
// behind.
type Watcher interface {
	// Events delivers events in revision order. It is closed after the last
	// event once the watcher has ended.
	Events() <-chan Event
	// Done is closed when the watcher ends; events may still be buffered in
	// Events.
	Done() <-chan struct{}
	// Err says why the watcher ended, once Done is closed: nil after Close,
	// ErrWatcherOverflow, ErrClosed, or the context's error. Before Done is
	// closed it returns nil.
	Err() error
	// Close ends the watcher. It is safe to call more than once and always
	// returns nil.
	Close() error
}
