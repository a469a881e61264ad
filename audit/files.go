package audit

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Audit files are named for the time they were started, in UTC, to the
// millisecond: "audit-20261123T203000.000Z.log". When two files would get
// the same name (a fast rotation, or a clock that went backwards) the later
// one gets a sequence suffix: "audit-20261123T203000.000Z-1.log". Sorting by
// (start, sequence) is the order the files were written in; the last one is
// the file being written.
const (
	filePrefix  = "audit-"
	fileSuffix  = ".log"
	stampLayout = "20060102T150405.000" // followed by a literal "Z"
)

// logFile is one audit file in a directory.
type logFile struct {
	name  string
	start time.Time // UTC, millisecond precision
	seq   int
}

func fileName(start time.Time, seq int) string {
	s := filePrefix + start.UTC().Format(stampLayout) + "Z"
	if seq > 0 {
		s += "-" + strconv.Itoa(seq)
	}
	return s + fileSuffix
}

// parseFileName recognizes the names fileName makes, and only those.
func parseFileName(name string) (logFile, bool) {
	rest, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return logFile{}, false
	}
	rest, ok = strings.CutSuffix(rest, fileSuffix)
	if !ok {
		return logFile{}, false
	}
	ts, seqStr, hasSeq := strings.Cut(rest, "-")
	ts, ok = strings.CutSuffix(ts, "Z")
	if !ok {
		return logFile{}, false
	}
	t, err := time.ParseInLocation(stampLayout, ts, time.UTC)
	if err != nil {
		return logFile{}, false
	}
	seq := 0
	if hasSeq {
		seq, err = strconv.Atoi(seqStr)
		if err != nil || seq <= 0 {
			return logFile{}, false
		}
	}
	if fileName(t, seq) != name { // reject non-canonical spellings
		return logFile{}, false
	}
	return logFile{name: name, start: t, seq: seq}, true
}

func compareFiles(a, b logFile) int {
	if c := a.start.Compare(b.start); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// listFiles returns the audit files in dir, oldest first. Other entries are
// ignored.
func listFiles(dir string) ([]logFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: cannot list audit directory: %w", err)
	}
	var files []logFile
	for _, de := range entries {
		if !de.Type().IsRegular() {
			continue
		}
		if lf, ok := parseFileName(de.Name()); ok {
			files = append(files, lf)
		}
	}
	slices.SortFunc(files, compareFiles)
	return files, nil
}

// nextFile names a new file started at now that sorts after last (if any),
// even when the clock has gone backwards.
func nextFile(last *logFile, now time.Time) logFile {
	start := now.UTC().Truncate(time.Millisecond)
	seq := 0
	if last != nil && !last.start.Before(start) {
		start, seq = last.start, last.seq+1
	}
	return logFile{name: fileName(start, seq), start: start, seq: seq}
}
