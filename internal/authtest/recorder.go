package authtest

import (
	"context"
	"sync"

	"github.com/portcullis-db/portcullis/audit"
)

// A Recorder is an audit.Emitter that keeps events in memory.
type Recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

// EmitAuditEvent records e.
func (r *Recorder) EmitAuditEvent(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

// Events returns the events recorded so far, oldest first.
func (r *Recorder) Events() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.events...)
}

// OfType returns the recorded events of type typ (e.g. audit.TypeUserLogin),
// oldest first.
func (r *Recorder) OfType(typ string) []audit.Event {
	var out []audit.Event
	for _, e := range r.Events() {
		if e.GetMetadata().Type == typ {
			out = append(out, e)
		}
	}
	return out
}
