package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MaxLineSize is the longest line readers decode; longer lines are skipped
// and counted like torn ones.
const MaxLineSize = 16 << 20

// Query selects events in [Search] and [Scan]. The zero Query matches every
// event.
type Query struct {
	// Types are the event types to return; empty means all. An entry ending
	// in ".*" matches by prefix: "db.session.*" matches "db.session.start".
	Types []string
	// User is the user to return events for ("user"); "" means any.
	User string
	// DB is the database service to return events for ("db_service");
	// "" means any.
	DB string
	// From and To bound the event time: From <= time < To. A zero bound is
	// open. Events without a readable time never match a bounded query.
	From, To time.Time
	// Limit is the most events to return; 0 means no limit.
	Limit int
	// Tail makes a limited [Search] return the newest Limit matching
	// events instead of the oldest (still oldest first). It reads every
	// file. [Scan] ignores it.
	Tail bool
}

// Match reports whether f satisfies the query's filters (all but Limit).
func (q *Query) Match(f Fields) bool {
	if len(q.Types) > 0 && !matchType(q.Types, f.Type()) {
		return false
	}
	if q.User != "" && f.User() != q.User {
		return false
	}
	if q.DB != "" && f.GetString("db_service") != q.DB {
		return false
	}
	if !q.From.IsZero() || !q.To.IsZero() {
		t := f.Time()
		if t.IsZero() ||
			(!q.From.IsZero() && t.Before(q.From)) ||
			(!q.To.IsZero() && !t.Before(q.To)) {
			return false
		}
	}
	return true
}

func matchType(types []string, typ string) bool {
	for _, want := range types {
		if prefix, ok := strings.CutSuffix(want, "*"); ok && strings.HasSuffix(prefix, ".") {
			if strings.HasPrefix(typ, prefix) {
				return true
			}
		} else if want == typ {
			return true
		}
	}
	return false
}

// ScanStats counts what a scan read.
type ScanStats struct {
	Files   int // audit files read
	Matched int // events passed to the callback
	// Skipped counts non-empty lines that are not an event: a torn last line
	// left by a crash, a line cut by a concurrent writer, or corruption.
	Skipped int
}

// SearchResult is what [Search] found.
type SearchResult struct {
	Events []Fields
	// Skipped counts lines that could not be decoded (see ScanStats).
	Skipped int
}

// errStop ends a scan early without an error.
var errStop = errors.New("audit: stop scan")

// Scan reads the audit files in dir (those a [FileLog] writes) oldest first,
// in the order their events were written, and calls fn for each event that
// matches q, until q.Limit events or fn returns an error (which Scan returns).
// Lines that do not decode are skipped and counted, never fatal. Files
// deleted while the scan runs (old ones pruned by a FileLog) are passed over.
// Scan reads every file: it has no index, so a narrow time range costs as
// much as a wide one.
func Scan(ctx context.Context, dir string, q Query, fn func(Fields) error) (ScanStats, error) {
	var st ScanStats
	files, err := listFiles(dir)
	if err != nil {
		return st, err
	}
	for _, lf := range files {
		err := scanFile(ctx, filepath.Join(dir, lf.name), &q, &st, fn)
		if errors.Is(err, errStop) {
			return st, nil
		}
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

func scanFile(ctx context.Context, path string, q *Query, st *ScanStats, fn func(Fields) error) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // pruned since it was listed
		}
		return fmt.Errorf("audit: cannot open audit file: %w", err)
	}
	defer f.Close()
	st.Files++
	return scanLines(ctx, f, q, st, fn)
}

// scanLines decodes one event per line from r.
func scanLines(ctx context.Context, r io.Reader, q *Query, st *ScanStats, fn func(Fields) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line = line[:0]
		tooLong := false
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if !tooLong {
				if len(line)+len(chunk) > MaxLineSize {
					tooLong, line = true, line[:0]
				} else {
					line = append(line, chunk...)
				}
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("audit: cannot read audit file: %w", err)
		}
		switch trimmed := bytes.TrimSpace(line); {
		case tooLong:
			st.Skipped++
		case len(trimmed) == 0:
			// blank line (or the end of the file)
		default:
			fields, derr := decodeFields(trimmed)
			if derr != nil {
				st.Skipped++
			} else if q.Match(fields) {
				st.Matched++
				if ferr := fn(fields); ferr != nil {
					return ferr
				}
				if q.Limit > 0 && st.Matched >= q.Limit {
					return errStop
				}
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// Search returns the events in dir's audit files that match q, oldest
// first, with the number of lines it had to skip (see [Scan]).
func Search(ctx context.Context, dir string, q Query) (*SearchResult, error) {
	res := &SearchResult{}
	if q.Tail && q.Limit > 0 {
		return searchTail(ctx, dir, q)
	}
	st, err := Scan(ctx, dir, q, func(f Fields) error {
		res.Events = append(res.Events, f)
		return nil
	})
	res.Skipped = st.Skipped
	if err != nil {
		return nil, err
	}
	return res, nil
}

// searchTail keeps the newest q.Limit matches in a ring.
func searchTail(ctx context.Context, dir string, q Query) (*SearchResult, error) {
	limit := q.Limit
	q.Limit = 0
	ring := make([]Fields, 0, min(limit, 1024))
	next := 0 // where the next event goes once the ring is full
	st, err := Scan(ctx, dir, q, func(f Fields) error {
		if len(ring) < limit {
			ring = append(ring, f)
			return nil
		}
		ring[next] = f
		next = (next + 1) % limit
		return nil
	})
	if err != nil {
		return nil, err
	}
	events := make([]Fields, 0, len(ring))
	events = append(events, ring[next:]...)
	events = append(events, ring[:next]...)
	return &SearchResult{Events: events, Skipped: st.Skipped}, nil
}
