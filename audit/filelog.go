package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Durability says when a [FileLog] forces events to stable storage.
type Durability int

const (
	// SyncBatch (the zero value) keeps events in a buffer in the process,
	// writes the buffer when it holds 64 KiB, and writes and fsyncs it at
	// most SyncInterval after an event arrives, on [FileLog.Sync], on
	// rotation and on Close. A process crash loses the events still in the
	// buffer (up to SyncInterval's worth); a machine crash or power loss
	// loses those written since the last fsync (also up to SyncInterval's
	// worth). Use it for high event rates (database queries).
	SyncBatch Durability = iota
	// SyncEachEvent writes and fsyncs every event before EmitAuditEvent
	// returns: once it returns nil the event survives a process or machine
	// crash. A crash during the call can leave a torn last line, which
	// readers skip and count. Each event costs an fsync (typically 0.1–10 ms).
	SyncEachEvent
)

// String returns "batch" or "each-event".
func (d Durability) String() string {
	switch d {
	case SyncBatch:
		return "batch"
	case SyncEachEvent:
		return "each-event"
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// Defaults for [FileLogConfig].
const (
	DefaultMaxSize      int64 = 100 << 20 // 100 MiB
	DefaultSyncInterval       = time.Second
)

// flushThreshold is the buffer size at which SyncBatch writes (without
// fsync) before the interval is up.
const flushThreshold = 64 << 10

// ErrClosed is returned by a [FileLog] after Close.
var ErrClosed = errors.New("audit: file log is closed")

// FileLogConfig configures a [FileLog]. Only Dir is required.
type FileLogConfig struct {
	// Dir is the directory for the audit files; created with mode 0700 if
	// missing (an existing directory keeps its mode). Required. The log
	// owns the files named audit-*.log in it; other files are left alone.
	Dir string
	// MaxSize is the size in bytes at which a file is rotated: an event that
	// would take the file past it goes to a new file (an event larger than
	// MaxSize gets a file of its own). 0 means DefaultMaxSize.
	MaxSize int64
	// MaxBackups is how many rotated files to keep besides the current one;
	// the oldest are deleted. 0 keeps them all.
	MaxBackups int
	// Durability says when events are fsynced; the zero value is SyncBatch.
	Durability Durability
	// SyncInterval bounds how long SyncBatch keeps an event before writing
	// and fsyncing it. 0 means DefaultSyncInterval. Must be 0 with
	// SyncEachEvent.
	SyncInterval time.Duration
	// Clock gives event times and drives daily rotation (days are UTC);
	// nil means time.Now.
	Clock func() time.Time
	// Rand is the source of event IDs; nil means crypto/rand.Reader.
	Rand io.Reader
	// Logger receives failures that no call can return (background syncs,
	// deleting old files); nil means a no-op logger.
	Logger *zap.Logger
}

func (c *FileLogConfig) check() error {
	switch {
	case c.Dir == "":
		return errors.New("audit: FileLogConfig.Dir is empty; set it to the directory that should hold the audit files")
	case c.MaxSize < 0:
		return fmt.Errorf("audit: FileLogConfig.MaxSize is negative (%d); use a size in bytes, or 0 for the default of 100 MiB", c.MaxSize)
	case c.MaxBackups < 0:
		return fmt.Errorf("audit: FileLogConfig.MaxBackups is negative (%d); use the number of rotated files to keep, or 0 to keep all", c.MaxBackups)
	case c.Durability != SyncBatch && c.Durability != SyncEachEvent:
		return fmt.Errorf("audit: FileLogConfig.Durability %d is unknown; use audit.SyncBatch or audit.SyncEachEvent", int(c.Durability))
	case c.SyncInterval < 0:
		return fmt.Errorf("audit: FileLogConfig.SyncInterval is negative (%v); use a positive duration, or 0 for the default of 1s", c.SyncInterval)
	case c.SyncInterval > 0 && c.Durability == SyncEachEvent:
		return errors.New("audit: FileLogConfig.SyncInterval applies only to SyncBatch; remove it or set Durability to audit.SyncBatch")
	}
	return nil
}

// FileLog is an [Emitter] that writes events as JSON lines (one event per
// line, as [MarshalEvent] encodes it) to files in a directory, rotating them
// by size and by UTC day. See the package documentation for the file layout.
// It is safe for concurrent use.
type FileLog struct {
	dir        string
	maxSize    int64
	maxBackups int
	durability Durability
	clock      func() time.Time
	rand       io.Reader
	log        *zap.Logger

	mu       sync.Mutex
	f        *os.File // nil after a failed rotation; reopened on the next event
	cur      logFile  // the file being written; name "" before the first
	size     int64    // bytes in cur, counting pending
	day      utcDay   // UTC day cur was started or reopened on
	pending  []byte   // SyncBatch: whole lines not yet written
	unsynced bool     // written since the last fsync
	torn     bool     // the last write was partial: start the next with '\n'
	deferred error    // a background failure, returned by the next call
	closed   bool

	// bufs holds buffers for encoding events outside the lock.
	bufs sync.Pool // of *[]byte

	stop chan struct{} // SyncBatch: stops the sync goroutine
	done chan struct{} // closed when the sync goroutine has returned
}

// NewFileLog checks cfg, creates the directory if needed and opens the
// newest audit file for appending if it was started today (UTC) and is below
// MaxSize, or starts a new one. Call Close when done.
func NewFileLog(cfg FileLogConfig) (*FileLog, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	l := &FileLog{
		dir:        cfg.Dir,
		maxSize:    cfg.MaxSize,
		maxBackups: cfg.MaxBackups,
		durability: cfg.Durability,
		clock:      cfg.Clock,
		rand:       cfg.Rand,
		log:        cfg.Logger,
	}
	if l.maxSize == 0 {
		l.maxSize = DefaultMaxSize
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	if l.log == nil {
		l.log = zap.NewNop()
	}
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: cannot create audit directory: %w", err)
	}
	if err := l.open(l.clock()); err != nil {
		return nil, err
	}
	if l.durability == SyncBatch {
		interval := cfg.SyncInterval
		if interval == 0 {
			interval = DefaultSyncInterval
		}
		l.stop, l.done = make(chan struct{}), make(chan struct{})
		go l.syncLoop(interval)
	}
	return l, nil
}

// open continues the newest file if it is from today and not full, and
// starts a new file otherwise.
func (l *FileLog) open(now time.Time) error {
	files, err := listFiles(l.dir)
	if err != nil {
		return err
	}
	if n := len(files); n > 0 {
		last := files[n-1]
		l.cur = last
		if dayOf(last.start) == dayOf(now) {
			ok, err := l.reopen(last)
			if err != nil {
				return err
			}
			if ok {
				l.day = dayOf(now)
				l.prune()
				return nil
			}
		}
	}
	return l.startFile(now)
}

// reopen opens lf for appending if it is below maxSize. If a crash left it
// without a final newline, it appends one so that the next event starts on
// a line of its own (readers skip the torn line).
func (l *FileLog) reopen(lf logFile) (bool, error) {
	path := filepath.Join(l.dir, lf.name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return false, fmt.Errorf("audit: cannot open audit file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() >= l.maxSize {
		f.Close()
		return false, nil
	}
	size := fi.Size()
	if size > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err != nil {
			f.Close()
			return false, fmt.Errorf("audit: cannot read audit file %s: %w", path, err)
		}
		if last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				f.Close()
				return false, fmt.Errorf("audit: cannot repair torn audit file %s: %w", path, err)
			}
			size++
			l.unsynced = true
		}
	}
	l.f, l.size = f, size
	return true, nil
}

// startFile creates a new file named for now (after l.cur) and makes it
// current.
func (l *FileLog) startFile(now time.Time) error {
	var last *logFile
	if l.cur.name != "" {
		last = &l.cur
	}
	nf := nextFile(last, now)
	f, err := os.OpenFile(filepath.Join(l.dir, nf.name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: cannot create audit file: %w", err)
	}
	syncDir(l.dir)
	l.f, l.cur, l.size, l.day, l.unsynced, l.torn = f, nf, 0, dayOf(now), false, false
	l.prune()
	return nil
}

// rotate finishes the current file and starts a new one.
func (l *FileLog) rotate(now time.Time) error {
	if err := l.flush(true); err != nil {
		return err
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("audit: cannot close audit file %s: %w", l.cur.name, err)
	}
	l.f = nil
	return l.startFile(now)
}

// prune deletes the oldest rotated files beyond maxBackups.
func (l *FileLog) prune() {
	if l.maxBackups == 0 {
		return
	}
	files, err := listFiles(l.dir)
	if err != nil {
		l.log.Warn("audit: cannot list audit files to delete old ones", zap.Error(err))
		return
	}
	var rotated []logFile
	for _, lf := range files {
		if compareFiles(lf, l.cur) < 0 {
			rotated = append(rotated, lf)
		}
	}
	for i := 0; i < len(rotated)-l.maxBackups; i++ {
		if err := os.Remove(filepath.Join(l.dir, rotated[i].name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("audit: cannot delete old audit file", zap.String("file", rotated[i].name), zap.Error(err))
		}
	}
}

// EmitAuditEvent stamps e (see [Metadata]) and appends it to the current
// file, rotating first if the UTC day changed or the event would take the
// file past MaxSize. With SyncEachEvent the event is on stable storage when
// it returns nil. It also returns, once, a failure of a background sync.
func (l *FileLog) EmitAuditEvent(_ context.Context, e Event) error {
	if err := stamp(e, l.clock, l.rand); err != nil {
		return err
	}
	bp, _ := l.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	line, err := appendMarshalEvent((*bp)[:0], e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	err = l.write(line)
	if cap(line) <= maxPooledBuf {
		*bp = line
		l.bufs.Put(bp)
	}
	return err
}

// maxPooledBuf is the largest encoding buffer a FileLog keeps for reuse.
const maxPooledBuf = 64 << 10

// write appends one encoded event (a whole line) to the log; see
// EmitAuditEvent. It does not keep line.
func (l *FileLog) write(line []byte) error {
	var err error
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	now := l.clock()
	switch {
	case l.f == nil:
		err = l.startFile(now)
	case dayOf(now) != l.day, l.size > 0 && l.size+int64(len(line)) > l.maxSize:
		err = l.rotate(now)
	}
	if err != nil {
		return err
	}
	l.pending = append(l.pending, line...)
	l.size += int64(len(line))
	switch {
	case l.durability == SyncEachEvent:
		err = l.flush(true)
	case len(l.pending) >= flushThreshold:
		err = l.flush(false)
	}
	return errors.Join(err, l.takeDeferred())
}

// flush writes the pending lines and, if sync is set, fsyncs the file.
func (l *FileLog) flush(sync bool) error {
	if l.f == nil {
		l.pending = l.pending[:0]
		return nil
	}
	if len(l.pending) > 0 {
		buf := l.pending
		if l.torn {
			buf = append([]byte{'\n'}, buf...)
		}
		n, err := l.f.Write(buf)
		l.pending = l.pending[:0]
		if n > 0 {
			l.unsynced = true
			l.torn = n < len(buf)
		}
		if err != nil {
			return fmt.Errorf("audit: cannot write audit file %s: %w", l.cur.name, err)
		}
	}
	if sync && l.unsynced {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("audit: cannot fsync audit file %s: %w", l.cur.name, err)
		}
		l.unsynced = false
	}
	return nil
}

func (l *FileLog) takeDeferred() error {
	err := l.deferred
	l.deferred = nil
	return err
}

// syncLoop writes and fsyncs buffered events every interval (SyncBatch).
func (l *FileLog) syncLoop(interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			if !l.closed {
				if err := l.flush(true); err != nil {
					l.log.Error("audit: background sync of the audit log failed", zap.Error(err))
					if l.deferred == nil {
						l.deferred = err
					}
				}
			}
			l.mu.Unlock()
		}
	}
}

// Sync writes buffered events and fsyncs the current file. It returns, once,
// a failure of an earlier background sync.
func (l *FileLog) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return errors.Join(l.flush(true), l.takeDeferred())
}

// Close writes and fsyncs buffered events, closes the file and stops the
// background sync. Further events get [ErrClosed]; closing again returns nil.
func (l *FileLog) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	err := errors.Join(l.flush(true), l.takeDeferred())
	if l.f != nil {
		if cerr := l.f.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("audit: cannot close audit file %s: %w", l.cur.name, cerr))
		}
		l.f = nil
	}
	l.mu.Unlock()
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	return err
}

// Dir returns the directory the log writes to.
func (l *FileLog) Dir() string { return l.dir }

// Search writes buffered events (without fsync) and then searches the log's
// directory like [Search].
func (l *FileLog) Search(ctx context.Context, q Query) (*SearchResult, error) {
	l.mu.Lock()
	var err error
	if !l.closed {
		err = l.flush(false)
	}
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return Search(ctx, l.dir, q)
}

// utcDay is a calendar day in UTC.
type utcDay struct {
	year  int
	month time.Month
	day   int
}

func dayOf(t time.Time) utcDay {
	y, m, d := t.UTC().Date()
	return utcDay{y, m, d}
}

// syncDir fsyncs a directory so that a new file's entry survives a crash.
// Best effort: some platforms and file systems cannot fsync a directory.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}
