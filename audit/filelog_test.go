package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var day1 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newLog(t *testing.T, cfg FileLogConfig) *FileLog {
	t.Helper()
	l, err := NewFileLog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func login(user string) *UserLogin {
	return &UserLogin{
		Metadata:     Metadata{Type: TypeUserLogin},
		UserMetadata: UserMetadata{User: user},
		Method:       LoginMethodPassword,
		Status:       Status{Success: true},
	}
}

func emit(t *testing.T, em Emitter, e Event) {
	t.Helper()
	if err := em.EmitAuditEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	files, err := listFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.name)
	}
	return names
}

func searchAll(t *testing.T, dir string) *SearchResult {
	t.Helper()
	res, err := Search(context.Background(), dir, Query{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func users(res *SearchResult) string {
	var u []string
	for _, f := range res.Events {
		u = append(u, f.User())
	}
	return strings.Join(u, ",")
}

// lineLen is the length of a login(user) line (users of equal length give
// equal lines when the clock is fixed).
func lineLen(t *testing.T, user string) int64 {
	t.Helper()
	e := login(user)
	if err := stamp(e, func() time.Time { return day1 }, nil); err != nil {
		t.Fatal(err)
	}
	line, err := MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(line) + 1)
}

func TestFileLogConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		field string
		cfg   FileLogConfig
	}{
		{"Dir", FileLogConfig{}},
		{"MaxSize", FileLogConfig{Dir: dir, MaxSize: -1}},
		{"MaxBackups", FileLogConfig{Dir: dir, MaxBackups: -1}},
		{"Durability", FileLogConfig{Dir: dir, Durability: 7}},
		{"SyncInterval", FileLogConfig{Dir: dir, SyncInterval: -time.Second}},
		{"SyncInterval", FileLogConfig{Dir: dir, Durability: SyncEachEvent, SyncInterval: time.Second}},
	} {
		l, err := NewFileLog(tc.cfg)
		if err == nil {
			l.Close()
			t.Errorf("%+v: no error", tc.cfg)
			continue
		}
		if !strings.Contains(err.Error(), "FileLogConfig."+tc.field) {
			t.Errorf("error %q does not name FileLogConfig.%s", err, tc.field)
		}
	}
}

func TestFileLogWritesJSONLines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	clock := newFakeClock(day1)
	l := newLog(t, FileLogConfig{Dir: dir, Clock: clock.Now})
	var want bytes.Buffer
	for _, u := range []string{"alice", "bob", "carol"} {
		e := login(u)
		emit(t, l, e)
		line, err := MarshalEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		want.Write(line)
		want.WriteByte('\n')
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names := fileNames(t, dir)
	if len(names) != 1 || names[0] != "audit-20261123T120000.000Z.log" {
		t.Fatalf("files %v", names)
	}
	got, err := os.ReadFile(filepath.Join(dir, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("file content:\n%s\nwant:\n%s", got, want.Bytes())
	}

	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 || fi.Mode().Perm() != 0o600 {
		t.Errorf("modes: dir %v, file %v; want 0700 and 0600", di.Mode().Perm(), fi.Mode().Perm())
	}
}

func TestFileLogRotatesBySize(t *testing.T) {
	dir := t.TempDir()
	size := lineLen(t, "u0")
	l := newLog(t, FileLogConfig{Dir: dir, MaxSize: 2 * size, Clock: newFakeClock(day1).Now})
	for i := range 5 {
		emit(t, l, login(fmt.Sprintf("u%d", i)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names := fileNames(t, dir)
	want := []string{"audit-20261123T120000.000Z.log", "audit-20261123T120000.000Z-1.log", "audit-20261123T120000.000Z-2.log"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	for i, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if wantSize := []int64{2 * size, 2 * size, size}[i]; fi.Size() != wantSize {
			t.Errorf("%s: %d bytes, want %d", n, fi.Size(), wantSize)
		}
	}
	if got := users(searchAll(t, dir)); got != "u0,u1,u2,u3,u4" {
		t.Errorf("events %s", got)
	}
}

func TestFileLogOversizedEventGetsItsOwnFile(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, FileLogConfig{Dir: dir, MaxSize: 100, Clock: newFakeClock(day1).Now})
	emit(t, l, login("a"))
	emit(t, l, login(strings.Repeat("b", 200)))
	emit(t, l, login("c"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(fileNames(t, dir)); n != 3 {
		t.Errorf("%d files, want 3", n)
	}
	if res := searchAll(t, dir); len(res.Events) != 3 || res.Skipped != 0 {
		t.Errorf("%d events, %d skipped", len(res.Events), res.Skipped)
	}
}

func TestFileLogRotatesByDay(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(time.Date(2026, 11, 23, 23, 59, 59, 0, time.UTC))
	l := newLog(t, FileLogConfig{Dir: dir, Clock: clock.Now})
	emit(t, l, login("a"))
	clock.Advance(500 * time.Millisecond)
	emit(t, l, login("b")) // same day, same file
	clock.Advance(time.Second)
	emit(t, l, login("c")) // 2026-11-24T00:00:00.5Z
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"audit-20261123T235959.000Z.log", "audit-20261124T000000.500Z.log"}
	if got := fileNames(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if got := users(searchAll(t, dir)); got != "a,b,c" {
		t.Errorf("events %s", got)
	}

	// A restart on a later day starts a new file instead of appending.
	clock.Set(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	l2 := newLog(t, FileLogConfig{Dir: dir, Clock: clock.Now})
	emit(t, l2, login("d"))
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(fileNames(t, dir)); n != 3 {
		t.Errorf("%d files after restart on a new day, want 3", n)
	}
}

func TestFileLogDaysAreUTC(t *testing.T) {
	dir := t.TempDir()
	// 22:00 and 23:30 UTC on the same UTC day, but on different days in UTC+2.
	zone := time.FixedZone("UTC+2", 2*3600)
	clock := newFakeClock(time.Date(2026, 11, 24, 0, 0, 0, 0, zone))
	l := newLog(t, FileLogConfig{Dir: dir, Clock: clock.Now})
	emit(t, l, login("a"))
	clock.Advance(90 * time.Minute)
	emit(t, l, login("b"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileNames(t, dir); len(got) != 1 {
		t.Errorf("files %v, want one", got)
	}
}

func TestFileLogMaxBackups(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, FileLogConfig{Dir: dir, MaxSize: lineLen(t, "u0"), MaxBackups: 2, Clock: newFakeClock(day1).Now})
	for i := range 6 {
		emit(t, l, login(fmt.Sprintf("u%d", i)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(fileNames(t, dir)); n != 3 {
		t.Errorf("%d files, want 3 (2 backups and the current one)", n)
	}
	if got := users(searchAll(t, dir)); got != "u3,u4,u5" {
		t.Errorf("events %s, want the newest three", got)
	}
}

func TestFileLogClockGoesBackwards(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(day1)
	l := newLog(t, FileLogConfig{Dir: dir, MaxSize: lineLen(t, "u0"), Clock: clock.Now})
	emit(t, l, login("u0"))
	clock.Advance(-time.Hour)
	emit(t, l, login("u1"))
	clock.Advance(time.Second)
	emit(t, l, login("u2"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"audit-20261123T120000.000Z.log", "audit-20261123T120000.000Z-1.log", "audit-20261123T120000.000Z-2.log"}
	if got := fileNames(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if got := users(searchAll(t, dir)); got != "u0,u1,u2" {
		t.Errorf("events %s, want the order they were written in", got)
	}
}

func TestFileLogReopenAppends(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(day1)
	for _, u := range []string{"a", "b"} {
		l := newLog(t, FileLogConfig{Dir: dir, Clock: clock.Now})
		emit(t, l, login(u))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Hour)
	}
	if n := len(fileNames(t, dir)); n != 1 {
		t.Errorf("%d files, want 1 (a restart on the same day appends)", n)
	}
	if got := users(searchAll(t, dir)); got != "a,b" {
		t.Errorf("events %s", got)
	}

	// A full file is not reopened.
	dir = t.TempDir()
	for _, u := range []string{"a", "b"} {
		l := newLog(t, FileLogConfig{Dir: dir, MaxSize: lineLen(t, "a"), Clock: clock.Now})
		emit(t, l, login(u))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(fileNames(t, dir)); n != 2 {
		t.Errorf("%d files, want 2 (a full file gets no more events)", n)
	}
}

func TestFileLogRepairsTornTail(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(day1)
	l := newLog(t, FileLogConfig{Dir: dir, Clock: clock.Now, Durability: SyncEachEvent})
	emit(t, l, login("a"))
	emit(t, l, login("b"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of the next write.
	path := filepath.Join(dir, fileNames(t, dir)[0])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"event":"user.login","uid":"0d4c`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	l2 := newLog(t, FileLogConfig{Dir: dir, Clock: clock.Now, Durability: SyncEachEvent})
	emit(t, l2, login("c"))
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	res := searchAll(t, dir)
	if got := users(res); got != "a,b,c" || res.Skipped != 1 {
		t.Errorf("events %s, skipped %d; want a,b,c and 1 skipped", got, res.Skipped)
	}
}

func TestFileLogSyncEachEvent(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(day1)
	l := newLog(t, FileLogConfig{Dir: dir, Clock: clock.Now, Durability: SyncEachEvent})
	e := login("alice")
	emit(t, l, e)

	// Before Close or Sync the event is in the file.
	data, err := os.ReadFile(filepath.Join(dir, fileNames(t, dir)[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(e.ID)) {
		t.Fatalf("event not on disk after EmitAuditEvent returned: %q", data)
	}

	// The process "crashes" (l is never closed before the restart) and a
	// new log in the same directory sees the event.
	l2 := newLog(t, FileLogConfig{Dir: dir, Clock: clock.Now, Durability: SyncEachEvent})
	emit(t, l2, login("bob"))
	res, err := l2.Search(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	if got := users(res); got != "alice,bob" {
		t.Errorf("events %s", got)
	}
}

func TestFileLogSyncBatch(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, FileLogConfig{Dir: dir, Clock: newFakeClock(day1).Now, SyncInterval: time.Hour})
	path := filepath.Join(dir, fileNames(t, dir)[0])
	emit(t, l, login("a"))
	if data, err := os.ReadFile(path); err != nil || len(data) != 0 {
		t.Fatalf("SyncBatch wrote before Sync: %q, %v", data, err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := users(searchAll(t, dir)); got != "a" {
		t.Fatalf("after Sync: events %q", got)
	}
	emit(t, l, login("b"))
	if got := users(searchAll(t, dir)); got != "a" {
		t.Fatalf("before Close: events %q", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := users(searchAll(t, dir)); got != "a,b" {
		t.Errorf("after Close: events %q", got)
	}
}

func TestFileLogSyncBatchWritesFullBuffer(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, FileLogConfig{Dir: dir, Clock: newFakeClock(day1).Now, SyncInterval: time.Hour})
	path := filepath.Join(dir, fileNames(t, dir)[0])
	size := lineLen(t, "u0")
	below := int((flushThreshold - 1) / size)
	for range below {
		emit(t, l, login("u0"))
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("wrote before the buffer was full: %v, %v", fi.Size(), err)
	}
	emit(t, l, login("u0"))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(below+1) * size; fi.Size() != want {
		t.Errorf("file has %d bytes after the buffer filled, want %d", fi.Size(), want)
	}
}

func TestFileLogBackgroundSync(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, FileLogConfig{Dir: dir, SyncInterval: time.Millisecond})
	path := filepath.Join(dir, fileNames(t, dir)[0])
	e := login("a")
	emit(t, l, e)
	// No deadline of our own: the background sync must happen eventually,
	// and the test binary's timeout catches it if it never does.
	for {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(e.ID)) {
			break
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFileLogConcurrent(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, FileLogConfig{Dir: dir, MaxSize: 8 << 10, SyncInterval: time.Millisecond})
	const writers, perWriter = 8, 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() { // a concurrent reader
		for {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			if _, err := l.Search(context.Background(), Query{Types: []string{TypeUserCreate}}); err != nil {
				readerDone <- err
				return
			}
		}
	}()
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				e := &ResourceChange{
					Metadata:         Metadata{Type: TypeUserCreate},
					UserMetadata:     UserMetadata{User: fmt.Sprintf("w%d", w)},
					ResourceMetadata: ResourceMetadata{Kind: KindUser, Name: fmt.Sprintf("%04d", i)},
				}
				if err := l.EmitAuditEvent(context.Background(), e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res := searchAll(t, dir)
	if len(res.Events) != writers*perWriter || res.Skipped != 0 {
		t.Fatalf("%d events, %d skipped; want %d and 0", len(res.Events), res.Skipped, writers*perWriter)
	}
	ids := map[string]bool{}
	last := map[string]string{}
	for _, f := range res.Events {
		if ids[f.ID()] {
			t.Fatalf("duplicate ID %s", f.ID())
		}
		ids[f.ID()] = true
		name := f.GetString("resource_name")
		if name <= last[f.User()] {
			t.Fatalf("%s: event %s after %s", f.User(), name, last[f.User()])
		}
		last[f.User()] = name
	}
	if n := len(fileNames(t, dir)); n < 2 {
		t.Errorf("%d files; the test should rotate while writing", n)
	}
}

func TestFileLogClosed(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, FileLogConfig{Dir: dir})
	emit(t, l, login("a"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := l.EmitAuditEvent(context.Background(), login("b")); !errors.Is(err, ErrClosed) {
		t.Errorf("Emit after Close: %v", err)
	}
	if err := l.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: %v", err)
	}
	res, err := l.Search(context.Background(), Query{})
	if err != nil || users(res) != "a" {
		t.Errorf("Search after Close: %v, %v", res, err)
	}
	if l.Dir() != dir {
		t.Errorf("Dir() = %q", l.Dir())
	}
}

func TestFileLogLeavesOtherFilesAlone(t *testing.T) {
	dir := t.TempDir()
	others := []string{"notes.txt", "audit-bogus.log", "audit-20260101T000000.000Z-01.log"}
	for _, n := range others {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("not an event\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory with an audit file's name is not a file.
	if err := os.Mkdir(filepath.Join(dir, "audit-20260101T000000.000Z.log"), 0o700); err != nil {
		t.Fatal(err)
	}
	l := newLog(t, FileLogConfig{Dir: dir, MaxSize: lineLen(t, "a"), MaxBackups: 1, Clock: newFakeClock(day1).Now})
	for range 3 {
		emit(t, l, login("a"))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range others {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if res := searchAll(t, dir); len(res.Events) != 2 || res.Skipped != 0 {
		t.Errorf("%d events, %d skipped; want 2 and 0", len(res.Events), res.Skipped)
	}
}
