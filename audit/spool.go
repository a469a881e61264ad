package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// A spool is the disk queue of a [Forwarder]: events that could not be
// delivered yet, oldest first, in append-only segment files in one
// directory. Each segment holds one event per line (the event's JSON as
// [MarshalEvent] encodes it) and is named for its sequence number:
// "spool-00000000000000000001.jsonl". Segments are created with mode 0600,
// the directory with 0700. An append writes whole lines and fsyncs before it
// returns; once every event of a segment has been delivered the segment is
// deleted.
//
// Reading and acknowledging are separate: peek reads from the head without
// consuming, ack consumes up to a position peek returned. A crash between
// delivering events and acknowledging them replays them on the next start
// (the receiver de-duplicates by event ID).
//
// A spool is not safe for concurrent use; the Forwarder guards it.
type spool struct {
	dir     string
	segSize int64
	log     *zap.Logger

	segs    []spoolSegment // oldest first
	w       *os.File       // the last segment, open for appending; nil before the first append
	headOff int64          // bytes of segs[0] already consumed
	size    int64          // bytes not yet consumed, over all segments
	nextSeq uint64
}

type spoolSegment struct {
	name string
	seq  uint64
	size int64
}

// spoolPos is a position in the spool: seg segments from the head are
// consumed, and off bytes of the one after them.
type spoolPos struct {
	seg int
	off int64
}

const (
	spoolPrefix = "spool-"
	spoolSuffix = ".jsonl"
)

func spoolName(seq uint64) string { return fmt.Sprintf("%s%020d%s", spoolPrefix, seq, spoolSuffix) }

// parseSpoolName recognizes the names spoolName makes, and only those.
func parseSpoolName(name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, spoolPrefix)
	if !ok {
		return 0, false
	}
	rest, ok = strings.CutSuffix(rest, spoolSuffix)
	if !ok || len(rest) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || spoolName(seq) != name {
		return 0, false
	}
	return seq, true
}

// openSpool opens the spool in dir, creating the directory (0700) if
// needed. Segments left by an earlier run are kept for replay; new events
// always go to a new segment, so a torn last line of an old one stays
// where it is (readers skip it).
func openSpool(dir string, segSize int64, log *zap.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: cannot create the spool directory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: cannot list the spool directory: %w", err)
	}
	s := &spool{dir: dir, segSize: segSize, log: log, nextSeq: 1}
	for _, de := range entries {
		seq, ok := parseSpoolName(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			return nil, fmt.Errorf("audit: cannot read the spool segment %s: %w", de.Name(), err)
		}
		if fi.Size() == 0 { // created by a run that crashed before writing
			os.Remove(filepath.Join(dir, de.Name()))
			continue
		}
		s.segs = append(s.segs, spoolSegment{name: de.Name(), seq: seq, size: fi.Size()})
		s.size += fi.Size()
	}
	slices.SortFunc(s.segs, func(a, b spoolSegment) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	if n := len(s.segs); n > 0 {
		s.nextSeq = s.segs[n-1].seq + 1
	}
	return s, nil
}

// empty reports whether nothing waits in the spool.
func (s *spool) empty() bool { return s.size == 0 }

// bytes is the size of what waits in the spool.
func (s *spool) bytes() int64 { return s.size }

// append writes lines (events without their newline) at the tail and
// fsyncs. On failure nothing of lines counts as written: a partial write is
// truncated away, or, if that fails too, the segment is closed so the next
// append starts a new one (readers skip the torn line).
func (s *spool) append(lines []json.RawMessage) error {
	if len(lines) == 0 {
		return nil
	}
	if s.w != nil && s.segs[len(s.segs)-1].size >= s.segSize {
		s.closeWriter()
	}
	if s.w == nil {
		name := spoolName(s.nextSeq)
		f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("audit: cannot create a spool segment in %s: %w", s.dir, err)
		}
		syncDir(s.dir)
		s.segs = append(s.segs, spoolSegment{name: name, seq: s.nextSeq})
		s.nextSeq++
		s.w = f
	}
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	buf := make([]byte, 0, n)
	for _, l := range lines {
		buf = append(buf, l...)
		buf = append(buf, '\n')
	}
	tail := &s.segs[len(s.segs)-1]
	_, err := s.w.Write(buf)
	if err == nil {
		err = s.w.Sync()
	}
	if err != nil {
		if terr := s.w.Truncate(tail.size); terr != nil {
			s.log.Error("audit: cannot undo a failed write to the spool; its last line is torn and will be skipped",
				zap.String("segment", tail.name), zap.Error(terr))
			if fi, serr := s.w.Stat(); serr == nil {
				s.size += fi.Size() - tail.size
				tail.size = fi.Size()
			}
			s.closeWriter()
		}
		return fmt.Errorf("audit: cannot write to the spool segment %s: %w", filepath.Join(s.dir, tail.name), err)
	}
	tail.size += int64(len(buf))
	s.size += int64(len(buf))
	return nil
}

func (s *spool) closeWriter() {
	if s.w == nil {
		return
	}
	if err := s.w.Close(); err != nil {
		s.log.Warn("audit: cannot close a spool segment", zap.String("dir", s.dir), zap.Error(err))
	}
	s.w = nil
}

// peek reads events from the head without consuming them: at most
// maxEvents, and no more than maxBytes in total (but always at least one
// event if there is one). It returns them and the position after them.
// Lines that are not a JSON object (torn by a crash, corrupt) are logged at
// error level and skipped; the position moves past them, so a peek may
// return no events and a position that still advances.
//
// A position never points past the end of the last segment into "the next
// one": appends may extend the last segment between peek and ack, and ack
// must not consume what they added.
func (s *spool) peek(maxEvents, maxBytes int) ([]json.RawMessage, spoolPos, error) {
	var out []json.RawMessage
	pos := spoolPos{seg: 0, off: s.headOff}
	total := 0
	for pos.seg < len(s.segs) {
		seg := s.segs[pos.seg]
		if pos.off < seg.size {
			full, err := s.readSegment(seg, &pos, &out, &total, maxEvents, maxBytes)
			if err != nil {
				return nil, spoolPos{}, err
			}
			if full {
				break
			}
		}
		if pos.seg+1 >= len(s.segs) {
			break
		}
		pos = spoolPos{seg: pos.seg + 1}
	}
	return out, pos, nil
}

// readSegment reads lines of seg from pos.off up to seg.size (the bytes
// appended so far) into out, advancing pos.off past each line it reads.
// full reports that a limit was reached.
func (s *spool) readSegment(seg spoolSegment, pos *spoolPos, out *[]json.RawMessage, total *int, maxEvents, maxBytes int) (full bool, err error) {
	path := filepath.Join(s.dir, seg.name)
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("audit: cannot open the spool segment %s: %w", path, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(f, pos.off, seg.size-pos.off), 64<<10)
	for len(*out) < maxEvents {
		line, rerr := r.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return false, fmt.Errorf("audit: cannot read the spool segment %s: %w", path, rerr)
		}
		if len(line) == 0 {
			if pos.off < seg.size {
				s.log.Error("audit: a spool segment is shorter than what was written to it; the events in the missing part are lost",
					zap.String("segment", path), zap.Int64("size", seg.size), zap.Int64("read", pos.off))
				pos.off = seg.size
			}
			return false, nil
		}
		ev := bytes.TrimSpace(line)
		switch {
		case len(ev) == 0:
		case !isJSONObject(ev):
			s.log.Error("audit: skipping a corrupt line in the spool (torn by a crash?); the event it held is lost",
				zap.String("segment", path), zap.Int64("offset", pos.off), zap.Int("bytes", len(line)))
		default:
			if len(*out) > 0 && *total+len(ev) > maxBytes {
				return true, nil
			}
			*out = append(*out, json.RawMessage(slices.Clone(ev)))
			*total += len(ev)
		}
		pos.off += int64(len(line))
	}
	return true, nil
}

func isJSONObject(b []byte) bool {
	return len(b) > 1 && b[0] == '{' && b[len(b)-1] == '}' && json.Valid(b)
}

// ack consumes the spool up to pos (from peek), deleting segments that are
// fully consumed.
func (s *spool) ack(pos spoolPos) error {
	var errs []error
	for i := 0; i < pos.seg && len(s.segs) > 0; i++ {
		errs = append(errs, s.dropHead())
	}
	if len(s.segs) == 0 {
		return errors.Join(errs...)
	}
	if pos.off > s.headOff {
		s.size -= pos.off - s.headOff
		s.headOff = pos.off
	}
	if s.headOff >= s.segs[0].size {
		errs = append(errs, s.dropHead())
	}
	return errors.Join(errs...)
}

// dropHead deletes the head segment.
func (s *spool) dropHead() error {
	head := s.segs[0]
	if len(s.segs) == 1 {
		s.closeWriter()
	}
	s.size -= head.size - s.headOff
	s.segs = s.segs[1:]
	s.headOff = 0
	if err := os.Remove(filepath.Join(s.dir, head.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit: cannot delete the delivered spool segment %s: %w", head.name, err)
	}
	return nil
}

// close closes the open segment. What waits in the spool stays on disk for
// the next start.
func (s *spool) close() {
	s.closeWriter()
}
