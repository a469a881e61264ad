package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults for [ForwarderConfig].
const (
	DefaultForwardQueueSize     = 4096
	DefaultForwardBatchSize     = 256
	DefaultForwardBatchBytes    = 4 << 20 // 4 MiB
	DefaultForwardFlushInterval = 200 * time.Millisecond
	DefaultForwardRetryInterval = time.Second
	DefaultForwardMaxRetry      = 30 * time.Second
	DefaultForwardSendTimeout   = 30 * time.Second
	DefaultSpoolMaxSize         = 512 << 20 // 512 MiB
	DefaultSpoolSegmentSize     = 8 << 20   // 8 MiB
)

// ErrForwarderClosed is returned by [Forwarder.EmitAuditEvent] after Close.
var ErrForwarderClosed = errors.New("audit: forwarder is closed")

// ErrSpoolFull is wrapped by the error [Forwarder.EmitAuditEvent] returns
// when the event cannot be accepted because the spool could not hold it.
var ErrSpoolFull = errors.New("audit: forwarder spool is full")

// ForwarderConfig configures a [Forwarder]. Send and SpoolDir are required.
type ForwarderConfig struct {
	// Send delivers a batch of events (each the JSON of one event, oldest
	// first) to the audit log, typically the Auth service's
	// POST /v1/audit/events through authclient.Client.EmitAuditEvents. It
	// returns nil only when the receiver has recorded the whole batch.
	// Required. It is called from one goroutine at a time and must return
	// when its context is done.
	Send func(ctx context.Context, events []json.RawMessage) error
	// IsPermanent reports whether a Send error means the receiver refused
	// the batch for good (malformed events) rather than being unreachable.
	// A refused batch is logged at error level event by event (type, uid,
	// sid, user) and dropped instead of being retried forever. Nil means
	// every error is retried.
	IsPermanent func(error) bool

	// SpoolDir holds the events that could not be sent yet; created with
	// mode 0700 if missing. Required, and used by one Forwarder at a time.
	SpoolDir string
	// SpoolMaxSize bounds the bytes the Forwarder holds for delivery, in
	// the spool and in memory together (default DefaultSpoolMaxSize).
	// Beyond it EmitAuditEvent refuses events with [ErrSpoolFull].
	SpoolMaxSize int64
	// SpoolSegmentSize is the size at which the spool starts a new segment
	// file (default DefaultSpoolSegmentSize). A crash replays at most the
	// segment being delivered, so smaller segments mean fewer duplicates.
	SpoolSegmentSize int64

	// QueueSize is how many events wait in memory (default
	// DefaultForwardQueueSize); when it is full they move to the spool.
	QueueSize int
	// BatchSize is the most events one Send carries (default
	// DefaultForwardBatchSize); MaxBatchBytes the most bytes (default
	// DefaultForwardBatchBytes). An event larger than MaxBatchBytes is
	// refused by EmitAuditEvent.
	BatchSize     int
	MaxBatchBytes int
	// FlushInterval is how long an event waits for a full batch before it
	// is sent anyway, and, while the receiver is unreachable, how often
	// waiting events are written to the spool (default
	// DefaultForwardFlushInterval).
	FlushInterval time.Duration
	// RetryInterval is the wait before the first retry after a failed
	// Send; it doubles on each failure up to MaxRetryInterval (defaults
	// DefaultForwardRetryInterval and DefaultForwardMaxRetry).
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration
	// SendTimeout bounds one Send (default DefaultForwardSendTimeout).
	SendTimeout time.Duration

	// ClusterName is written into events whose ClusterName is empty.
	ClusterName string
	// Clock gives the time for events without one; nil means time.Now.
	Clock func() time.Time
	// Rand is the source of event IDs; nil means crypto/rand.Reader.
	Rand io.Reader
	// Logger receives delivery problems; nil means a no-op logger.
	Logger *zap.Logger
}

func (c *ForwarderConfig) setDefaults() error {
	switch {
	case c.Send == nil:
		return errors.New("audit: ForwarderConfig.Send is nil; set it to the function that delivers events (e.g. authclient.Client.EmitAuditEvents)")
	case c.SpoolDir == "":
		return errors.New("audit: ForwarderConfig.SpoolDir is empty; set it to a directory for events that cannot be delivered yet")
	case c.SpoolMaxSize < 0, c.SpoolSegmentSize < 0, c.QueueSize < 0, c.BatchSize < 0, c.MaxBatchBytes < 0,
		c.FlushInterval < 0, c.RetryInterval < 0, c.MaxRetryInterval < 0, c.SendTimeout < 0:
		return errors.New("audit: ForwarderConfig has a negative size or interval; use 0 for the default")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def64(&c.SpoolMaxSize, DefaultSpoolMaxSize)
	def64(&c.SpoolSegmentSize, DefaultSpoolSegmentSize)
	def(&c.QueueSize, DefaultForwardQueueSize)
	def(&c.BatchSize, DefaultForwardBatchSize)
	def(&c.MaxBatchBytes, DefaultForwardBatchBytes)
	defDur(&c.FlushInterval, DefaultForwardFlushInterval)
	defDur(&c.RetryInterval, DefaultForwardRetryInterval)
	defDur(&c.MaxRetryInterval, DefaultForwardMaxRetry)
	defDur(&c.SendTimeout, DefaultForwardSendTimeout)
	if c.MaxRetryInterval < c.RetryInterval {
		c.MaxRetryInterval = c.RetryInterval
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

// Forwarder is an [Emitter] that ships events to a remote audit log (the
// Auth service's) in batches, through ForwarderConfig.Send. Database agents
// and proxies use it so that every event lands in the cluster's audit log.
//
// EmitAuditEvent stamps the event (see [Metadata]), encodes it and queues
// it in memory; it never waits for the network. A background goroutine
// sends batches of up to BatchSize events, or whatever is queued every
// FlushInterval. While Send fails, queued events are written to an
// append-only spool on disk (fsynced per batch) and retried with backoff;
// once Send succeeds again the spool is replayed, oldest first, before
// anything newer. A Forwarder started on a spool left by an earlier run
// replays it first. Events reach Send in the order EmitAuditEvent accepted
// them.
//
// # Delivery guarantee
//
// At least once, for every event EmitAuditEvent accepted (returned nil
// for), unless the process or machine crashes while the event is only in
// memory (at most FlushInterval's worth while the receiver is unreachable,
// or the events queued or in flight while it is reachable), or the disk
// fails. Duplicates happen when a crash or a lost reply makes the Forwarder
// send a batch the receiver had already recorded; events carry a unique ID
// ("uid") and the Auth service de-duplicates a bounded window of recent
// IDs.
//
// Nothing is dropped silently. EmitAuditEvent refuses (returns an error
// for, and logs at error level with its type, uid, sid and user) an event
// that does not fit: larger than MaxBatchBytes, or beyond SpoolMaxSize of
// events waiting for delivery ([ErrSpoolFull]), or emitted after Close
// ([ErrForwarderClosed]). The bytes waiting in memory count against
// SpoolMaxSize, so an accepted event always has room in the spool. Events
// that are lost after acceptance — a spool write fails, a spooled line was
// torn by a crash, or the receiver refuses a batch for good (IsPermanent)
// — are logged at error level one by one.
type Forwarder struct {
	cfg ForwarderConfig
	log *zap.Logger

	mu             sync.Mutex
	queue          []json.RawMessage // accepted, in memory, oldest first
	queueBytes     int64
	inflight       []json.RawMessage // popped from queue, being sent
	inflightBytes  int64
	inflightCopied bool // inflight was also written to the spool's head
	spool          *spool
	closed         bool
	full           bool // the spool-full error was logged
	stats          ForwarderStats

	wake    chan struct{} // a full batch is queued
	closing chan struct{} // closed by Close
	done    chan struct{} // closed when the sender returns
	cancel  context.CancelFunc
	runCtx  context.Context
}

// ForwarderStats describes a [Forwarder]'s state, for status pages and
// metrics.
type ForwarderStats struct {
	Queued     int    // events waiting in memory
	SpoolBytes int64  // bytes waiting in the spool
	Delivered  uint64 // events Send accepted
	Refused    uint64 // events EmitAuditEvent refused (and logged)
	// Lost counts accepted events that could not be delivered: a spool
	// write failed or the receiver refused them for good (IsPermanent).
	// Each is logged. Corrupt spool lines are logged but not counted.
	Lost uint64
	// Unreachable is set while Send fails.
	Unreachable bool
}

// NewForwarder opens the spool and starts sending. Call Close when done.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger.Named("audit-forwarder")
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolSegmentSize, log)
	if err != nil {
		return nil, err
	}
	if !sp.empty() {
		log.Info("audit: replaying events spooled by an earlier run", zap.String("dir", cfg.SpoolDir), zap.Int64("bytes", sp.bytes()))
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{
		cfg:     cfg,
		log:     log,
		spool:   sp,
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		runCtx:  ctx,
		cancel:  cancel,
	}
	go f.run()
	return f, nil
}

// EmitAuditEvent implements [Emitter]: it stamps e, fills its ClusterName
// if empty and ForwarderConfig.ClusterName is set, and queues its JSON for
// delivery. It does not wait for the network; it may write to the spool
// when the in-memory queue is full. See [Forwarder] for when it refuses an
// event.
func (f *Forwarder) EmitAuditEvent(_ context.Context, e Event) error {
	if err := stamp(e, f.cfg.Clock, f.cfg.Rand); err != nil {
		return err
	}
	if md := e.GetMetadata(); md.ClusterName == "" {
		md.ClusterName = f.cfg.ClusterName
	}
	line, err := MarshalEvent(e)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		f.refuse(line, "the forwarder is closed")
		return fmt.Errorf("%w; event %s was not recorded", ErrForwarderClosed, e.GetMetadata().ID)
	case len(line) > f.cfg.MaxBatchBytes:
		f.refuse(line, "the event is larger than the batch limit")
		return fmt.Errorf("audit: event %s is %d bytes, more than the forwarder's MaxBatchBytes (%d); it was not recorded",
			e.GetMetadata().ID, len(line), f.cfg.MaxBatchBytes)
	case f.pendingBytes()+int64(len(line)) > f.cfg.SpoolMaxSize:
		if !f.full {
			f.full = true
			f.log.Error("audit: the spool is full because the audit log has been unreachable too long; new events are refused until it drains",
				zap.String("dir", f.cfg.SpoolDir), zap.Int64("limit", f.cfg.SpoolMaxSize))
		}
		f.refuse(line, "the spool is full")
		return fmt.Errorf("%w (%s holds %d bytes, the limit is %d): the audit log is unreachable; event %s was not recorded",
			ErrSpoolFull, f.cfg.SpoolDir, f.pendingBytes(), f.cfg.SpoolMaxSize, e.GetMetadata().ID)
	}
	if len(f.queue) >= f.cfg.QueueSize {
		f.spillLocked()
	}
	f.queue = append(f.queue, line)
	f.queueBytes += int64(len(line))
	if len(f.queue) >= f.cfg.BatchSize {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// pendingBytes counts what waits for delivery: the spool, the queue and a
// batch in flight that is not in the spool too.
func (f *Forwarder) pendingBytes() int64 {
	n := f.spool.bytes() + f.queueBytes
	if !f.inflightCopied {
		n += f.inflightBytes
	}
	return n
}

// spillLocked moves the events in memory to the tail of the spool: first a
// copy of the batch in flight (if it came from memory and is not there
// yet), so that if its Send fails the spool holds it ahead of the newer
// events; then the queue.
func (f *Forwarder) spillLocked() {
	if len(f.inflight) > 0 && !f.inflightCopied {
		if err := f.spool.append(f.inflight); err != nil {
			f.log.Error("audit: cannot spool the batch being sent; it is lost if the send fails", zap.Error(err))
		} else {
			f.inflightCopied = true
		}
	}
	if len(f.queue) == 0 {
		return
	}
	if err := f.spool.append(f.queue); err != nil {
		f.loseAll(f.queue, "cannot write to the spool: "+err.Error())
	}
	f.queue, f.queueBytes = nil, 0
}

// refuse logs an event EmitAuditEvent does not accept.
func (f *Forwarder) refuse(line []byte, reason string) {
	f.stats.Refused++
	f.logEvent("audit: event not recorded", line, reason)
}

// loseAll logs accepted events that cannot be delivered.
func (f *Forwarder) loseAll(lines []json.RawMessage, reason string) {
	f.stats.Lost += uint64(len(lines))
	for _, l := range lines {
		f.logEvent("audit: event lost", l, reason)
	}
}

func (f *Forwarder) logEvent(msg string, line []byte, reason string) {
	var head struct {
		Type string `json:"event"`
		ID   string `json:"uid"`
		SID  string `json:"sid"`
		User string `json:"user"`
	}
	_ = json.Unmarshal(line, &head)
	f.log.Error(msg, zap.String("reason", reason), zap.String("event", head.Type), zap.String("uid", head.ID),
		zap.String("sid", head.SID), zap.String("user", head.User))
}

// Stats returns the Forwarder's counters and queue sizes.
func (f *Forwarder) Stats() ForwarderStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.stats
	st.Queued = len(f.queue)
	st.SpoolBytes = f.spool.bytes()
	return st
}

// Close stops accepting events and delivers what it can until ctx is done:
// the spool, then the queue. Whatever is not delivered when Send fails or
// ctx ends (which cancels a Send in progress) is written to the spool for
// the next start; while the receiver is known to be unreachable (waiting
// to retry), Close spools without trying again. Close returns an error
// only if events were lost.
func (f *Forwarder) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		<-f.done
		return nil
	}
	f.closed = true
	lostBefore := f.stats.Lost
	f.mu.Unlock()
	close(f.closing)
	select {
	case <-f.done:
	case <-ctx.Done():
		f.cancel()
		<-f.done
	}
	f.cancel()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spool.close()
	if !f.spool.empty() {
		f.log.Info("audit: events left in the spool for the next start", zap.String("dir", f.cfg.SpoolDir), zap.Int64("bytes", f.spool.bytes()))
	}
	if lost := f.stats.Lost - lostBefore; lost > 0 {
		return fmt.Errorf("audit: %d events could not be delivered or spooled while closing; the log has each one", lost)
	}
	return nil
}

// batch is what the sender is delivering.
type batch struct {
	events    []json.RawMessage
	fromSpool bool
	pos       spoolPos // fromSpool: where the batch ends
}

// run is the sender goroutine.
func (f *Forwarder) run() {
	defer close(f.done)
	ticker := time.NewTicker(f.cfg.FlushInterval)
	defer ticker.Stop()
	var (
		retry     *time.Timer
		retryC    <-chan time.Time
		backoff   time.Duration
		closing   bool
		flush     = true // replay an old spool at once
		unhealthy bool
	)
	stopRetry := func() {
		if retry != nil {
			retry.Stop()
			retry, retryC = nil, nil
		}
	}
	defer stopRetry()
	for {
		if !flush && !closing {
			select {
			case <-f.wake:
			case <-ticker.C:
				flush = true
			case <-retryC:
				retry, retryC = nil, nil
				flush = true
			case <-f.closing:
				closing = true
			}
		}
		if !closing {
			select {
			case <-f.closing:
				closing = true
			default:
			}
		}
		// While backing off, only move memory to the spool.
		if retry != nil {
			f.mu.Lock()
			if flush || closing {
				f.spillLocked()
			}
			f.mu.Unlock()
			flush = false
			if closing {
				return
			}
			continue
		}
		// Send while there is something to send.
		for {
			f.mu.Lock()
			b, ok := f.next(flush || closing)
			f.mu.Unlock()
			if !ok {
				break
			}
			var err error
			if len(b.events) > 0 {
				err = f.send(b.events)
			}
			f.mu.Lock()
			f.finish(b, err)
			if err != nil && !f.permanent(err) {
				f.stats.Unreachable = true
				if !unhealthy {
					unhealthy = true
					f.log.Warn("audit: cannot deliver events; spooling them to disk and retrying",
						zap.String("dir", f.cfg.SpoolDir), zap.Error(err))
				}
				if closing {
					f.spillLocked()
					f.mu.Unlock()
					return
				}
				f.mu.Unlock()
				backoff = min(max(2*backoff, f.cfg.RetryInterval), f.cfg.MaxRetryInterval)
				retry = time.NewTimer(backoff)
				retryC = retry.C
				break
			}
			if err == nil && len(b.events) > 0 {
				backoff = 0
				f.stats.Unreachable = false
				if unhealthy {
					unhealthy = false
					f.log.Info("audit: delivering events again", zap.Int64("spooled_bytes", f.spool.bytes()))
				}
			}
			f.mu.Unlock()
		}
		flush = false
		if closing && retry == nil {
			return
		}
	}
}

// next picks the next batch: from the spool while it holds anything,
// otherwise from memory when a batch is full or force is set.
func (f *Forwarder) next(force bool) (batch, bool) {
	if !f.spool.empty() {
		if force {
			f.spillLocked()
		}
		events, pos, err := f.spool.peek(f.cfg.BatchSize, f.cfg.MaxBatchBytes)
		if err != nil {
			f.log.Error("audit: cannot read the spool; retrying later", zap.Error(err))
			return batch{}, false
		}
		return batch{events: events, fromSpool: true, pos: pos}, true
	}
	if len(f.queue) == 0 || (!force && len(f.queue) < f.cfg.BatchSize) {
		return batch{}, false
	}
	n, size := 0, 0
	for n < len(f.queue) && n < f.cfg.BatchSize {
		if n > 0 && size+len(f.queue[n]) > f.cfg.MaxBatchBytes {
			break
		}
		size += len(f.queue[n])
		n++
	}
	f.inflight = f.queue[:n:n]
	f.inflightBytes = int64(size)
	f.inflightCopied = false
	f.queue = f.queue[n:]
	f.queueBytes -= int64(size)
	return batch{events: f.inflight}, true
}

func (f *Forwarder) send(events []json.RawMessage) error {
	ctx, cancel := context.WithTimeout(f.runCtx, f.cfg.SendTimeout)
	defer cancel()
	return f.cfg.Send(ctx, events)
}

func (f *Forwarder) permanent(err error) bool {
	return err != nil && f.cfg.IsPermanent != nil && f.cfg.IsPermanent(err)
}

// finish records the outcome of sending b.
func (f *Forwarder) finish(b batch, err error) {
	delivered := err == nil
	if f.permanent(err) {
		f.loseAll(b.events, "the audit log refused the batch: "+err.Error())
		delivered = true // do not retry it
	} else if delivered {
		f.stats.Delivered += uint64(len(b.events))
		if f.full {
			f.full = false
			f.log.Info("audit: the audit log is reachable again; the spool is draining and events are accepted")
		}
	}
	if b.fromSpool {
		if delivered {
			if aerr := f.spool.ack(b.pos); aerr != nil {
				f.log.Warn("audit: cannot remove delivered events from the spool; they will be sent again", zap.Error(aerr))
			}
		}
		return
	}
	inflight, copied := f.inflight, f.inflightCopied
	f.inflight, f.inflightBytes, f.inflightCopied = nil, 0, false
	switch {
	case delivered && copied:
		// The batch went out, but a spill also wrote it at the spool's
		// head: consume that copy.
		_, pos, perr := f.spool.peek(len(inflight), int(^uint(0)>>1))
		if perr == nil {
			perr = f.spool.ack(pos)
		}
		if perr != nil {
			f.log.Warn("audit: cannot remove delivered events from the spool; they will be sent again", zap.Error(perr))
		}
	case !delivered && !copied:
		// Keep the order: the failed batch goes to the spool before
		// anything still in memory.
		if aerr := f.spool.append(inflight); aerr != nil {
			f.loseAll(inflight, "cannot write to the spool: "+aerr.Error())
		}
		f.spillLocked()
	case !delivered:
		f.spillLocked()
	}
}
