package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

// An Emitter records audit events. Implementations must be safe for
// concurrent use.
//
// EmitAuditEvent may fill the event's empty ID, Code and Time in place (see
// [Metadata]), so an event value must not be emitted from several goroutines
// at once. Sinks in this package write the event even when ctx is already
// done: an audit record must not be lost because a client hung up.
type Emitter interface {
	EmitAuditEvent(ctx context.Context, e Event) error
}

// MultiEmitter sends each event to every emitter in order, even when one of
// them fails, and returns the failures joined with [errors.Join]. Nil entries
// are skipped.
//
// The first sink that stamps the event (fills ID and Time) does so in place,
// so later sinks see the same ID and Time. To give every sink, including
// custom ones placed first, a stamped event, wrap the MultiEmitter in a
// [Stamper].
type MultiEmitter []Emitter

// EmitAuditEvent implements [Emitter].
func (m MultiEmitter) EmitAuditEvent(ctx context.Context, e Event) error {
	var errs []error
	for _, em := range m {
		if em == nil {
			continue
		}
		if err := em.EmitAuditEvent(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DiscardEmitter drops every event. Its zero value is ready to use and costs
// nothing: use DiscardEmitter{} where an Emitter is required and none is
// configured.
type DiscardEmitter struct{}

// EmitAuditEvent implements [Emitter]; it does nothing.
func (DiscardEmitter) EmitAuditEvent(context.Context, Event) error { return nil }

// Stamper fills the metadata an event's producer may leave empty (ID, Code,
// Time and, if set here, ClusterName) and passes the event on to Next. Put it
// in front of a [MultiEmitter] so that every sink sees the same ID and Time.
type Stamper struct {
	// Next receives the stamped events. Required.
	Next Emitter
	// ClusterName is written into events whose ClusterName is empty; ""
	// leaves them alone.
	ClusterName string
	// Clock gives the time for events without one; nil means time.Now.
	Clock func() time.Time
	// Rand is the source of event IDs; nil means crypto/rand.Reader.
	Rand io.Reader
}

// EmitAuditEvent implements [Emitter].
func (s *Stamper) EmitAuditEvent(ctx context.Context, e Event) error {
	if s.Next == nil {
		return errors.New("audit: Stamper.Next is nil; set it to the emitter that should receive events")
	}
	if err := stamp(e, s.Clock, s.Rand); err != nil {
		return err
	}
	if md := e.GetMetadata(); md.ClusterName == "" {
		md.ClusterName = s.ClusterName
	}
	return s.Next.EmitAuditEvent(ctx, e)
}

// statusEvent is an event that embeds [Status].
type statusEvent interface {
	GetStatus() *Status
}

// stamp checks that e has a type and fills its empty ID, Code and Time.
// Time is converted to UTC. clock nil means time.Now; rnd nil means
// crypto/rand.Reader.
func stamp(e Event, clock func() time.Time, rnd io.Reader) error {
	if e == nil {
		return errors.New("audit: cannot emit a nil event")
	}
	md := e.GetMetadata()
	if md == nil {
		return fmt.Errorf("audit: %T has no metadata; embed audit.Metadata in it", e)
	}
	if md.Type == "" {
		return fmt.Errorf("audit: %T has no event type; set Metadata.Type (e.g. %q)", e, TypeUserLogin)
	}
	if md.ID == "" {
		id, err := newID(rnd)
		if err != nil {
			return err
		}
		md.ID = id
	}
	if md.Time.IsZero() {
		if clock == nil {
			clock = time.Now
		}
		md.Time = clock()
	}
	md.Time = md.Time.UTC()
	if md.Code == "" {
		failed := false
		if se, ok := e.(statusEvent); ok {
			if st := se.GetStatus(); st != nil {
				failed = !st.Success
			}
		}
		md.Code = defaultCode(md.Type, failed)
	}
	return nil
}

// newID returns a random (version 4) UUID read from rnd.
// NewSessionID returns a random UUIDv4 for [SessionMetadata.SessionID].
func NewSessionID() string {
	id, err := newID(nil)
	if err != nil {
		// crypto/rand does not fail on supported platforms (since Go 1.24
		// it crashes the program instead of returning an error).
		panic(err)
	}
	return id
}

func newID(rnd io.Reader) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", fmt.Errorf("audit: cannot generate an event ID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:]), nil
}
