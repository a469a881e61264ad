package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// result makes a Result of ops durations spread over [lo, hi] with a
// long tail of a few at tail.
func result(ops int, lo, hi, tail time.Duration, elapsed time.Duration) *Result {
	r := &Result{Config: Config{Concurrency: 1, Duration: time.Second}, Elapsed: elapsed, Latency: NewHistogram()}
	for i := range ops {
		d := lo + time.Duration(int64(hi-lo)*int64(i*i)/int64(ops*ops))
		if i%500 == 499 {
			d = tail
		}
		r.Latency.Record(d)
	}
	r.Ops = int64(ops)
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", path, got)
	}
}

func sideBySide() *Report {
	direct := result(10000, 80*time.Microsecond, 200*time.Microsecond, 2*time.Millisecond, time.Second)
	proxied := result(7000, 120*time.Microsecond, 300*time.Microsecond, 5*time.Millisecond, time.Second+time.Millisecond)
	proxied.Errors = 2
	proxied.FirstError = errors.New("connection reset\nby peer")
	return &Report{
		Title: "pg1 through the proxy at 127.0.0.1:3080 and direct: SELECT 1",
		Runs:  []Named{{"direct", direct}, {"portcullis", proxied}},
	}
}

func TestReportText(t *testing.T) {
	var b bytes.Buffer
	if err := sideBySide().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	golden(t, "side-by-side.txt", b.Bytes())
	// What a reader looks for, whatever the golden file says.
	for _, want := range []string{
		`(?m)^ +direct +portcullis +portcullis vs direct$`,
		`(?m)^throughput +10,000/s +6,993/s +0\.70×$`,
		`(?m)^latency p50 +110µs +165µs +\+55\.0µs$`,
		`(?m)^latency max +2\.00ms +5\.00ms +\+3\.00ms$`,
		`(?m)^errors +0 +2$`,
		`(?m)^first error of portcullis: connection reset by peer$`,
		`(?m)^latency of direct \(10,000 queries\):\n( .* - .*%\n){8}\n`,
		`(?m)^latency of portcullis \(7,000 queries\):\n( .* - .*%\n){8}$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the report does not match %s:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("trailing blank in %q", line)
		}
	}

	// One run: no comparison column; Connect counts connections.
	one := &Report{Runs: []Named{{"portcullis", result(100, time.Millisecond, 3*time.Millisecond, 9*time.Millisecond, time.Second)}}}
	one.Runs[0].Result.Config.Connect = true
	one.Runs[0].Result.Interrupted = true
	b.Reset()
	if err := one.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "one-run.txt", b.Bytes())
	if out := b.String(); strings.Contains(out, " vs ") || !strings.Contains(out, "connections") || !strings.Contains(out, "(interrupted)") {
		t.Errorf("one run:\n%s", out)
	}

	// A run without results still prints.
	empty := &Report{Runs: []Named{{"direct", &Result{Latency: NewHistogram()}}, {"portcullis", result(10, time.Millisecond, time.Millisecond, time.Millisecond, time.Second)}}}
	b.Reset()
	if err := empty.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Contains(out, "NaN") || strings.Contains(out, "Inf") || strings.Contains(out, "latency of direct") {
		t.Errorf("a run without results:\n%s", out)
	}
}

func TestReportJSON(t *testing.T) {
	var b bytes.Buffer
	if err := sideBySide().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "side-by-side.json", b.Bytes())
	var got struct {
		Title string
		Runs  []Summary
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Runs) != 2 || got.Runs[0].VsBaseline != nil || got.Runs[1].VsBaseline == nil {
		t.Fatalf("runs %+v", got.Runs)
	}
	d, p := got.Runs[0], got.Runs[1]
	if d.Name != "direct" || d.Ops != 10000 || d.Throughput != 10000 || d.ElapsedSeconds != 1 || d.Concurrency != 1 || d.DurationSeconds != 1 {
		t.Errorf("direct %+v", d)
	}
	if d.Latency.Min != 80 || d.Latency.Max != 2000 || d.Latency.P50 < d.Latency.Min || d.Latency.P99 > d.Latency.Max || len(d.Histogram) != 8 {
		t.Errorf("direct latency %+v, %d bins", d.Latency, len(d.Histogram))
	}
	c := p.VsBaseline
	if c.Baseline != "direct" || c.ThroughputRatio < 0.69 || c.ThroughputRatio > 0.7 || math.Abs(c.AddedP50-(p.Latency.P50-d.Latency.P50)) > 1e-9 || c.AddedMax != 3000 {
		t.Errorf("comparison %+v", c)
	}
	if p.Errors != 2 || p.FirstError != "connection reset\nby peer" {
		t.Errorf("portcullis errors %d %q", p.Errors, p.FirstError)
	}
	var n int64
	for _, bin := range p.Histogram {
		n += bin.Count
	}
	if n != p.Ops {
		t.Errorf("histogram counts %d of %d", n, p.Ops)
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                         "0ns",
		850:                       "850ns",
		time.Microsecond:          "1.00µs",
		98300:                     "98.3µs",
		123456:                    "123µs",
		1250 * time.Microsecond:   "1.25ms",
		12 * time.Second:          "12.0s",
		-42 * time.Microsecond:    "-42.0µs",
		90 * time.Minute:          "5400s",
		999499:                    "999µs",
		999500:                    "1.00ms",
		9995 * time.Nanosecond:    "10.0µs",
		999600 * time.Microsecond: "1.00s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%d) = %s, want %s", d, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := formatCount(n); got != want {
			t.Errorf("formatCount(%d) = %s, want %s", n, got, want)
		}
	}
}
