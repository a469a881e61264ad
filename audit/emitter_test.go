package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// recorder is an Emitter that keeps copies of the metadata it saw.
type recorder struct {
	mu   sync.Mutex
	seen []Metadata
	err  error
}

func (r *recorder) EmitAuditEvent(_ context.Context, e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, *e.GetMetadata())
	return r.err
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestStampFillsEmptyFields(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*3600)
	clock := newFakeClock(time.Date(2026, 11, 23, 22, 0, 0, 0, zone))
	e := &UserLogin{Metadata: Metadata{Type: TypeUserLogin}, Status: Status{Success: false}}
	if err := stamp(e, clock.Now, nil); err != nil {
		t.Fatal(err)
	}
	if !uuidV4.MatchString(e.ID) {
		t.Errorf("ID %q is not a UUIDv4", e.ID)
	}
	if e.Time.Location() != time.UTC || !e.Time.Equal(clock.Now()) {
		t.Errorf("Time = %v, want %v in UTC", e.Time, clock.Now())
	}
	if e.Code != CodeUserLoginFailure {
		t.Errorf("Code = %q, want the failure code %q", e.Code, CodeUserLoginFailure)
	}

	other := &UserLogin{Metadata: Metadata{Type: TypeUserLogin}}
	if err := stamp(other, clock.Now, nil); err != nil {
		t.Fatal(err)
	}
	if other.ID == e.ID {
		t.Error("two events got the same ID")
	}
}

func TestStampKeepsSetFields(t *testing.T) {
	zone := time.FixedZone("UTC-5", -5*3600)
	when := time.Date(2026, 1, 2, 3, 4, 5, 6, zone)
	e := &ResourceChange{Metadata: Metadata{Type: TypeUserCreate, ID: "given", Code: "X1", Time: when}}
	if err := stamp(e, func() time.Time { t.Fatal("clock called"); return time.Time{} }, iotest.ErrReader(errors.New("rand used"))); err != nil {
		t.Fatal(err)
	}
	if e.ID != "given" || e.Code != "X1" || !e.Time.Equal(when) || e.Time.Location() != time.UTC {
		t.Errorf("stamp changed set fields: %+v", e.Metadata)
	}
}

func TestStampErrors(t *testing.T) {
	if err := stamp(nil, nil, nil); err == nil {
		t.Error("nil event: no error")
	}
	if err := stamp(&UserLogin{}, nil, nil); err == nil {
		t.Error("empty type: no error")
	}
	randErr := errors.New("entropy exhausted")
	err := stamp(&UserLogin{Metadata: Metadata{Type: TypeUserLogin}}, nil, iotest.ErrReader(randErr))
	if !errors.Is(err, randErr) {
		t.Errorf("failing rand: got %v", err)
	}
}

func TestMultiEmitter(t *testing.T) {
	errA, errB := errors.New("sink a down"), errors.New("sink b down")
	a, b, c := &recorder{err: errA}, &recorder{}, &recorder{err: errB}
	m := MultiEmitter{a, nil, b, c}
	s := &Stamper{Next: m, ClusterName: "example", Clock: newFakeClock(time.Unix(1e9, 0)).Now}
	err := s.EmitAuditEvent(context.Background(), &UserLogin{Metadata: Metadata{Type: TypeUserLogin}})
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Errorf("error %v does not carry both failures", err)
	}
	for i, r := range []*recorder{a, b, c} {
		if len(r.seen) != 1 {
			t.Fatalf("sink %d saw %d events, want 1 (a failing sink must not stop the others)", i, len(r.seen))
		}
	}
	if a.seen[0].ID == "" || a.seen[0] != b.seen[0] || b.seen[0] != c.seen[0] {
		t.Errorf("sinks saw different metadata: %+v %+v %+v", a.seen[0], b.seen[0], c.seen[0])
	}
	if a.seen[0].ClusterName != "example" {
		t.Errorf("ClusterName = %q", a.seen[0].ClusterName)
	}
	if err := (MultiEmitter{b}).EmitAuditEvent(context.Background(), &UserLogin{Metadata: Metadata{Type: TypeUserLogin}}); err != nil {
		t.Errorf("healthy sinks: %v", err)
	}
}

func TestStamperRequiresNext(t *testing.T) {
	var s Stamper
	if err := s.EmitAuditEvent(context.Background(), &UserLogin{Metadata: Metadata{Type: TypeUserLogin}}); err == nil {
		t.Error("Stamper without Next: no error")
	}
	s.Next = &recorder{}
	e := &UserLogin{Metadata: Metadata{Type: TypeUserLogin, ClusterName: "mine"}}
	if err := s.EmitAuditEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if e.ClusterName != "mine" {
		t.Errorf("Stamper overwrote ClusterName: %q", e.ClusterName)
	}
}

func TestDiscardEmitter(t *testing.T) {
	var d Emitter = DiscardEmitter{}
	e := &UserLogin{Metadata: Metadata{Type: TypeUserLogin}}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.EmitAuditEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("DiscardEmitter allocates %v times per event", allocs)
	}
	if e.ID != "" {
		t.Error("DiscardEmitter modified the event")
	}
}

func TestZapEmitter(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	z := &ZapEmitter{Logger: zap.New(core), Clock: newFakeClock(goldenTime).Now}
	e := &UserLogin{
		Metadata:     Metadata{Type: TypeUserLogin},
		UserMetadata: UserMetadata{User: "alice", Roles: []string{"access"}},
		Method:       LoginMethodPassword,
		Status:       Status{Success: true},
	}
	if err := z.EmitAuditEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d log entries, want 1", len(entries))
	}
	got := entries[0]
	if got.Level != zapcore.InfoLevel || got.Message != TypeUserLogin {
		t.Errorf("entry %v %q", got.Level, got.Message)
	}
	m := got.ContextMap()
	if m["event"] != TypeUserLogin || m["user"] != "alice" || m["success"] != true ||
		m["uid"] != e.ID || m["code"] != CodeUserLogin || m["time"] != "2026-11-23T20:30:00.123456789Z" {
		t.Errorf("fields: %v", m)
	}
	if roles, ok := m["roles"].([]any); !ok || len(roles) != 1 || roles[0] != "access" {
		t.Errorf("roles: %#v", m["roles"])
	}
}

func TestZapEmitterNumbers(t *testing.T) {
	if f := zapField("n", jsonNumber("42")); f.Type != zapcore.Int64Type || f.Integer != 42 {
		t.Errorf("integer: %+v", f)
	}
	if f := zapField("x", jsonNumber("1.5")); f.Type != zapcore.Float64Type {
		t.Errorf("float: %+v", f)
	}
}

func TestZapEmitterZeroValue(t *testing.T) {
	var z ZapEmitter
	e := &UserLogin{Metadata: Metadata{Type: TypeUserLogin}}
	if err := z.EmitAuditEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if e.ID == "" {
		t.Error("zero ZapEmitter did not stamp the event")
	}
	if err := z.EmitAuditEvent(context.Background(), &UserLogin{}); err == nil {
		t.Error("event without type: no error")
	}
}

// newID writes the UUID form that fmt's %x groups did.
func TestNewIDFormat(t *testing.T) {
	for seed := range 50 {
		r := bytes.NewReader(bytes.Repeat([]byte{byte(seed * 37), byte(seed), 0xff, 0x01}, 4))
		raw := make([]byte, 16)
		r.Read(raw)
		r.Seek(0, io.SeekStart)
		got, err := newID(r)
		if err != nil {
			t.Fatal(err)
		}
		b := raw
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		if want := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]); got != want {
			t.Fatalf("newID = %s, want %s", got, want)
		}
	}
}
