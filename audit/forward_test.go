package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fwdEvent is a test event: G is the emitting goroutine, N its sequence.
type fwdEvent struct {
	Metadata
	SessionID string `json:"sid"`
	G         int    `json:"g"`
	N         int    `json:"n"`
	Pad       string `json:"pad,omitempty"`
}

func newFwdEvent(g, n int) *fwdEvent {
	return &fwdEvent{Metadata: Metadata{Type: "test.forward"}, SessionID: fmt.Sprintf("s-%d", g), G: g, N: n}
}

// fwdSink is a fake Send: down makes it fail as an unreachable service
// would; failEvery makes every n-th call fail.
type fwdSink struct {
	mu        sync.Mutex
	down      bool
	failEvery int
	reject    func([]json.RawMessage) error
	calls     int
	got       []json.RawMessage
}

var errFwdUnreachable = errors.New("connection refused")

func (s *fwdSink) Send(_ context.Context, events []json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.down || (s.failEvery > 0 && s.calls%s.failEvery == 0) {
		return errFwdUnreachable
	}
	if s.reject != nil {
		if err := s.reject(events); err != nil {
			return err
		}
	}
	for _, e := range events {
		s.got = append(s.got, append(json.RawMessage(nil), e...))
	}
	return nil
}

func (s *fwdSink) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *fwdSink) received(t *testing.T) []fwdEvent {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]fwdEvent, len(s.got))
	for i, raw := range s.got {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatalf("received %s: %v", raw, err)
		}
	}
	return out
}

func (s *fwdSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// waitFor polls cond until it holds. The bound only keeps a broken
// forwarder from hanging the run; it asserts nothing about speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fwdConfig is a configuration with short intervals and small sizes, so
// that batching, spooling and segment rotation all happen in tests.
func fwdConfig(t *testing.T, dir string, sink *fwdSink, log *zap.Logger) ForwarderConfig {
	t.Helper()
	return ForwarderConfig{
		Send:             sink.Send,
		SpoolDir:         dir,
		SpoolSegmentSize: 2048,
		QueueSize:        64,
		BatchSize:        16,
		FlushInterval:    2 * time.Millisecond,
		RetryInterval:    time.Millisecond,
		MaxRetryInterval: 4 * time.Millisecond,
		ClusterName:      "test",
		Logger:           log,
	}
}

func newForwarder(t *testing.T, cfg ForwarderConfig) *Forwarder {
	t.Helper()
	f, err := NewForwarder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f
}

func emitN(t *testing.T, f *Forwarder, g, from, to int) []string {
	t.Helper()
	var ids []string
	for n := from; n < to; n++ {
		e := newFwdEvent(g, n)
		if err := f.EmitAuditEvent(context.Background(), e); err != nil {
			t.Fatalf("emit %d: %v", n, err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

func spoolFiles(t *testing.T, dir string) []os.FileInfo {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []os.FileInfo
	for _, de := range entries {
		if _, ok := parseSpoolName(de.Name()); ok {
			fi, err := de.Info()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fi)
		}
	}
	return out
}

func checkIDs(t *testing.T, got []fwdEvent, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("received %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i] {
			t.Fatalf("event %d is %s (n=%d), want %s: order or content lost", i, got[i].ID, got[i].N, want[i])
		}
	}
}

func TestForwarderDeliversInBatches(t *testing.T) {
	sink := &fwdSink{}
	f := newForwarder(t, fwdConfig(t, filepath.Join(t.TempDir(), "spool"), sink, nil))
	ids := emitN(t, f, 0, 0, 100)
	waitFor(t, "100 events", func() bool { return sink.count() == 100 })
	got := sink.received(t)
	checkIDs(t, got, ids)
	if got[0].ClusterName != "test" || got[0].Time.IsZero() || got[0].SessionID != "s-0" {
		t.Errorf("first event %+v: want it stamped with the cluster name and time", got[0])
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Delivered != 100 || st.Queued != 0 || st.SpoolBytes != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestForwarderSpoolsWhileUnreachableAndReplaysInOrder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	core, logs := observer.New(zapcore.InfoLevel)
	sink := &fwdSink{down: true}
	f := newForwarder(t, fwdConfig(t, dir, sink, zap.New(core)))

	ids := emitN(t, f, 0, 0, 300)
	waitFor(t, "everything spooled", func() bool {
		st := f.Stats()
		return st.Unreachable && st.Queued == 0 && st.SpoolBytes > 0
	})
	if sink.count() != 0 {
		t.Fatal("the sink received events while down")
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	files := spoolFiles(t, dir)
	if len(files) < 2 {
		t.Fatalf("%d spool segments; want several (segment size 2048)", len(files))
	}
	var total int64
	for _, fi := range files {
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", fi.Name(), fi.Mode().Perm())
		}
		total += fi.Size()
	}
	if total != f.Stats().SpoolBytes {
		t.Errorf("segments hold %d bytes, stats say %d", total, f.Stats().SpoolBytes)
	}
	if logs.FilterMessageSnippet("spooling them to disk").Len() != 1 {
		t.Error("the outage was not logged once")
	}

	// Events emitted during the replay come after the spooled ones.
	sink.setDown(false)
	ids = append(ids, emitN(t, f, 0, 300, 350)...)
	waitFor(t, "350 events", func() bool { return sink.count() >= 350 && f.Stats().SpoolBytes == 0 })
	checkIDs(t, sink.received(t), ids)
	if files := spoolFiles(t, dir); len(files) != 0 {
		t.Errorf("%d spool segments left after the replay", len(files))
	}
	if logs.FilterMessageSnippet("delivering events again").Len() == 0 {
		t.Error("the recovery was not logged")
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestForwarderRestartReplaysSpoolFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	down := &fwdSink{down: true}
	f1, err := NewForwarder(fwdConfig(t, dir, down, nil))
	if err != nil {
		t.Fatal(err)
	}
	ids := emitN(t, f1, 0, 0, 50)
	if err := f1.Close(context.Background()); err != nil {
		t.Fatalf("Close with the receiver down: %v", err)
	}
	if len(spoolFiles(t, dir)) == 0 {
		t.Fatal("Close left nothing in the spool")
	}
	if err := f1.EmitAuditEvent(context.Background(), newFwdEvent(0, 99)); !errors.Is(err, ErrForwarderClosed) {
		t.Fatalf("emit after Close: %v", err)
	}

	up := &fwdSink{}
	f2 := newForwarder(t, fwdConfig(t, dir, up, nil))
	ids = append(ids, emitN(t, f2, 0, 50, 60)...)
	waitFor(t, "60 events", func() bool { return up.count() >= 60 && f2.Stats().SpoolBytes == 0 })
	checkIDs(t, up.received(t), ids)
	if err := f2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if files := spoolFiles(t, dir); len(files) != 0 {
		t.Errorf("%d spool segments left", len(files))
	}
}

func TestForwarderCloseCancelsAStuckSend(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	entered := make(chan struct{}, 1)
	cfg := fwdConfig(t, dir, &fwdSink{}, nil)
	cfg.Send = func(ctx context.Context, _ []json.RawMessage) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done() // a receiver that never answers
		return ctx.Err()
	}
	f, err := NewForwarder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := emitN(t, f, 0, 0, 5)
	<-entered
	ids = append(ids, emitN(t, f, 0, 5, 8)...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}

	up := &fwdSink{}
	f2 := newForwarder(t, fwdConfig(t, dir, up, nil))
	waitFor(t, "8 events", func() bool { return up.count() >= 8 && f2.Stats().SpoolBytes == 0 })
	checkIDs(t, up.received(t), ids)
}

func TestForwarderSpoolFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	core, logs := observer.New(zapcore.InfoLevel)
	sink := &fwdSink{down: true}
	cfg := fwdConfig(t, dir, sink, zap.New(core))
	cfg.SpoolMaxSize = 4000
	f := newForwarder(t, cfg)

	var ids []string
	var refused error
	for n := 0; n < 1000 && refused == nil; n++ {
		e := newFwdEvent(7, n)
		if refused = f.EmitAuditEvent(context.Background(), e); refused == nil {
			ids = append(ids, e.ID)
		}
	}
	if !errors.Is(refused, ErrSpoolFull) {
		t.Fatalf("emitting past the spool limit: %v", refused)
	}
	if !strings.Contains(refused.Error(), "unreachable") {
		t.Errorf("error %q does not say why", refused)
	}
	if len(ids) < 10 {
		t.Fatalf("only %d events fit in 4000 bytes", len(ids))
	}
	lost := logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessage("audit: event not recorded").All()
	if len(lost) != 1 {
		t.Fatalf("%d error logs for refused events, want 1", len(lost))
	}
	ctx := lost[0].ContextMap()
	if ctx["event"] != "test.forward" || ctx["sid"] != "s-7" || ctx["uid"] == "" {
		t.Errorf("the refused event is logged as %v; want its type, uid and sid", ctx)
	}
	if logs.FilterMessageSnippet("the spool is full").Len() != 1 {
		t.Error("the full spool was not logged once")
	}
	if f.Stats().Refused != 1 {
		t.Errorf("stats %+v", f.Stats())
	}

	// Once the receiver is back, everything accepted arrives and new events
	// are accepted again.
	sink.setDown(false)
	waitFor(t, "the spool to drain", func() bool { return sink.count() >= len(ids) && f.Stats().SpoolBytes == 0 })
	checkIDs(t, sink.received(t), ids)
	if err := f.EmitAuditEvent(context.Background(), newFwdEvent(7, 1000)); err != nil {
		t.Fatalf("emit after the spool drained: %v", err)
	}
}

func TestForwarderConcurrentEmitters(t *testing.T) {
	const goroutines, perG = 8, 250
	dir := filepath.Join(t.TempDir(), "spool")
	sink := &fwdSink{failEvery: 3}
	cfg := fwdConfig(t, dir, sink, nil)
	cfg.QueueSize = 32 // emitters spill while batches are in flight
	f := newForwarder(t, cfg)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for n := range perG {
				if err := f.EmitAuditEvent(context.Background(), newFwdEvent(g, n)); err != nil {
					t.Errorf("emit: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "every event", func() bool {
		st := f.Stats()
		return sink.count() >= goroutines*perG && st.Queued == 0 && st.SpoolBytes == 0
	})
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.received(t)
	seen := make(map[string]bool)
	next := make([]int, goroutines)
	for _, e := range got {
		if seen[e.ID] {
			t.Fatalf("event g=%d n=%d delivered twice", e.G, e.N)
		}
		seen[e.ID] = true
		if e.N != next[e.G] {
			t.Fatalf("goroutine %d: event %d arrived when %d was due", e.G, e.N, next[e.G])
		}
		next[e.G]++
	}
	for g, n := range next {
		if n != perG {
			t.Errorf("goroutine %d: %d events arrived, want %d", g, n, perG)
		}
	}
}

func TestForwarderRefusesOversizedEvents(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := fwdConfig(t, filepath.Join(t.TempDir(), "spool"), &fwdSink{}, zap.New(core))
	cfg.MaxBatchBytes = 200
	f := newForwarder(t, cfg)
	e := newFwdEvent(0, 0)
	e.Pad = strings.Repeat("x", 300)
	err := f.EmitAuditEvent(context.Background(), e)
	if err == nil || errors.Is(err, ErrSpoolFull) || !strings.Contains(err.Error(), "MaxBatchBytes") {
		t.Fatalf("oversized event: %v", err)
	}
	if logs.FilterMessage("audit: event not recorded").Len() != 1 {
		t.Error("the refused event was not logged")
	}
}

func TestForwarderDropsPermanentlyRefusedBatches(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	errBad := errors.New("bad request")
	sink := &fwdSink{reject: func(events []json.RawMessage) error {
		if strings.Contains(string(events[0]), `"n":1}`) {
			return errBad
		}
		return nil
	}}
	cfg := fwdConfig(t, filepath.Join(t.TempDir(), "spool"), sink, zap.New(core))
	cfg.BatchSize = 1
	cfg.IsPermanent = func(err error) bool { return errors.Is(err, errBad) }
	f := newForwarder(t, cfg)
	ids := emitN(t, f, 0, 0, 3)
	waitFor(t, "two events", func() bool { return sink.count() >= 2 && f.Stats().Lost == 1 })
	checkIDs(t, sink.received(t), []string{ids[0], ids[2]})
	lost := logs.FilterMessage("audit: event lost").All()
	if len(lost) != 1 || lost[0].ContextMap()["uid"] != ids[1] {
		t.Errorf("lost events logged: %v", lost)
	}
}

func TestForwarderConfigErrors(t *testing.T) {
	send := func(context.Context, []json.RawMessage) error { return nil }
	for _, tc := range []struct {
		cfg  ForwarderConfig
		want string
	}{
		{ForwarderConfig{SpoolDir: t.TempDir()}, "Send is nil"},
		{ForwarderConfig{Send: send}, "SpoolDir is empty"},
		{ForwarderConfig{Send: send, SpoolDir: t.TempDir(), QueueSize: -1}, "negative"},
	} {
		if _, err := NewForwarder(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewForwarder(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestForwarderQueueOverflowDuringSend fills the queue while a batch is in
// flight, so that EmitAuditEvent spills to the spool (with a copy of the
// batch in flight at its head); then the send succeeds or fails.
func TestForwarderQueueOverflowDuringSend(t *testing.T) {
	for _, sendFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("sendFails=%v", sendFails), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			sink := &fwdSink{}
			entered, release := make(chan struct{}), make(chan error)
			first := true
			cfg := fwdConfig(t, dir, sink, nil)
			cfg.QueueSize = 8
			cfg.BatchSize = 4
			cfg.Send = func(ctx context.Context, events []json.RawMessage) error {
				if first {
					first = false
					entered <- struct{}{}
					if err := <-release; err != nil {
						return err
					}
				}
				return sink.Send(ctx, events)
			}
			f := newForwarder(t, cfg)
			ids := emitN(t, f, 0, 0, 4) // a full batch: sent at once
			<-entered
			ids = append(ids, emitN(t, f, 0, 4, 20)...) // overflows the queue of 8
			if f.Stats().SpoolBytes == 0 {
				t.Fatal("the overflow did not reach the spool")
			}
			if sendFails {
				release <- errFwdUnreachable
			} else {
				release <- nil
			}
			waitFor(t, "20 events", func() bool {
				st := f.Stats()
				return sink.count() >= 20 && st.SpoolBytes == 0 && st.Queued == 0
			})
			checkIDs(t, sink.received(t), ids)
		})
	}
}
