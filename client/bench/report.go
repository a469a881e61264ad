package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Named is a Result under the name it is reported by, such as "direct"
// or "portcullis".
type Named struct {
	Name   string
	Result *Result
}

// A Report shows runs of one workload side by side; each run after the
// first is compared with the first (the baseline): its throughput as a
// ratio, its latencies as the time added.
type Report struct {
	// Title is the text form's first line; none when empty.
	Title string
	Runs  []Named
	// Bins is the number of rows of each run's latency histogram; 0
	// means 8.
	Bins int
}

// Summary is one run in a report's JSON form. Durations are in
// microseconds (fields ending in _us) or seconds.
type Summary struct {
	Name            string  `json:"name"`
	Concurrency     int     `json:"concurrency"`
	Connect         bool    `json:"connect"`
	DurationSeconds float64 `json:"duration_seconds"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	ElapsedSeconds  float64 `json:"elapsed_seconds"`
	Interrupted     bool    `json:"interrupted"`
	Ops             int64   `json:"ops"`
	Errors          int64   `json:"errors"`
	FirstError      string  `json:"first_error,omitempty"`
	// Throughput is successful operations per second.
	Throughput float64        `json:"throughput"`
	Latency    LatencySummary `json:"latency_us"`
	Histogram  []BinSummary   `json:"histogram"`
	// VsBaseline compares the run with the report's first; nil for the
	// first.
	VsBaseline *Comparison `json:"vs_baseline,omitempty"`
}

// LatencySummary holds a run's latency figures in microseconds.
type LatencySummary struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// BinSummary is a [Bin] in microseconds.
type BinSummary struct {
	FromUS float64 `json:"from_us"`
	ToUS   float64 `json:"to_us"`
	Count  int64   `json:"count"`
}

// Comparison is a run against the baseline: the ratio of throughputs
// (run/baseline; 0 when the baseline has none) and the latency the run
// adds (negative when it is faster), in microseconds.
type Comparison struct {
	Baseline        string  `json:"baseline"`
	ThroughputRatio float64 `json:"throughput_ratio"`
	AddedP50        float64 `json:"added_p50_us"`
	AddedP90        float64 `json:"added_p90_us"`
	AddedP99        float64 `json:"added_p99_us"`
	AddedMax        float64 `json:"added_max_us"`
}

// Compare compares r with baseline.
func Compare(baselineName string, baseline, r *Result) Comparison {
	c := Comparison{
		Baseline: baselineName,
		AddedP50: micros(r.Latency.Quantile(0.5) - baseline.Latency.Quantile(0.5)),
		AddedP90: micros(r.Latency.Quantile(0.9) - baseline.Latency.Quantile(0.9)),
		AddedP99: micros(r.Latency.Quantile(0.99) - baseline.Latency.Quantile(0.99)),
		AddedMax: micros(r.Latency.Max() - baseline.Latency.Max()),
	}
	if bt := baseline.Throughput(); bt > 0 {
		c.ThroughputRatio = r.Throughput() / bt
	}
	return c
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func (r *Report) bins() int {
	if r.Bins > 0 {
		return r.Bins
	}
	return 8
}

// Summarize returns the runs' JSON form.
func (r *Report) Summarize() []Summary {
	out := make([]Summary, len(r.Runs))
	for i, run := range r.Runs {
		res := run.Result
		h := res.Latency
		s := Summary{
			Name:            run.Name,
			Concurrency:     res.Config.Concurrency,
			Connect:         res.Config.Connect,
			DurationSeconds: res.Config.Duration.Seconds(),
			WarmupSeconds:   res.Config.Warmup.Seconds(),
			ElapsedSeconds:  res.Elapsed.Seconds(),
			Interrupted:     res.Interrupted,
			Ops:             res.Ops,
			Errors:          res.Errors,
			Throughput:      res.Throughput(),
			Latency: LatencySummary{
				Min: micros(h.Min()), Mean: micros(h.Mean()),
				P50: micros(h.Quantile(0.5)), P90: micros(h.Quantile(0.9)),
				P99: micros(h.Quantile(0.99)), P999: micros(h.Quantile(0.999)),
				Max: micros(h.Max()),
			},
			Histogram: []BinSummary{},
		}
		if res.FirstError != nil {
			s.FirstError = res.FirstError.Error()
		}
		for _, b := range h.Bins(r.bins()) {
			s.Histogram = append(s.Histogram, BinSummary{FromUS: micros(b.From), ToUS: micros(b.To), Count: b.Count})
		}
		if i > 0 {
			c := Compare(r.Runs[0].Name, r.Runs[0].Result, res)
			s.VsBaseline = &c
		}
		out[i] = s
	}
	return out
}

// WriteJSON writes the report as an indented JSON object:
// {"title": ..., "runs": [Summary...]}.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Title string    `json:"title,omitempty"`
		Runs  []Summary `json:"runs"`
	}{r.Title, r.Summarize()})
}

// WriteText writes the report for a person: a table with a column per run
// and, after each run but the first, a column comparing it with the
// first; then each run's first error, if any; then each run's latency
// histogram.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.Title != "" {
		b.WriteString(r.Title + "\n\n")
	}
	if len(r.Runs) == 0 {
		b.WriteString("no runs\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	unit := "queries"
	if r.Runs[0].Result.Config.Connect {
		unit = "connections"
	}
	header := []string{""}
	rows := [][]string{
		{"workers"}, {"time"}, {unit}, {"errors"}, {"throughput"},
		{"latency p50"}, {"latency p90"}, {"latency p99"}, {"latency max"},
	}
	base := r.Runs[0].Result
	for i, run := range r.Runs {
		res, h := run.Result, run.Result.Latency
		elapsed := formatDuration(res.Elapsed)
		if res.Interrupted {
			elapsed += " (interrupted)"
		}
		header = append(header, run.Name)
		cells := []string{
			strconv.Itoa(res.Config.Concurrency), elapsed, formatCount(res.Ops), formatCount(res.Errors),
			formatCount(int64(math.Round(res.Throughput()))) + "/s",
			formatDuration(h.Quantile(0.5)), formatDuration(h.Quantile(0.9)),
			formatDuration(h.Quantile(0.99)), formatDuration(h.Max()),
		}
		for k := range rows {
			rows[k] = append(rows[k], cells[k])
		}
		if i == 0 {
			continue
		}
		header = append(header, run.Name+" vs "+r.Runs[0].Name)
		c := Compare(r.Runs[0].Name, base, res)
		ratio := ""
		if c.ThroughputRatio > 0 {
			ratio = strconv.FormatFloat(c.ThroughputRatio, 'f', 2, 64) + "×"
		}
		added := func(us float64) string {
			if base.Ops == 0 || res.Ops == 0 {
				return ""
			}
			return formatAdded(time.Duration(math.Round(us * float64(time.Microsecond))))
		}
		cells = []string{"", "", "", "", ratio, added(c.AddedP50), added(c.AddedP90), added(c.AddedP99), added(c.AddedMax)}
		for k := range rows {
			rows[k] = append(rows[k], cells[k])
		}
	}
	writeColumns(&b, header, rows)
	for _, run := range r.Runs {
		if err := run.Result.FirstError; err != nil {
			fmt.Fprintf(&b, "\nfirst error of %s: %s\n", run.Name, strings.Join(strings.Fields(err.Error()), " "))
		}
	}
	for _, run := range r.Runs {
		writeBins(&b, run, unit, r.bins())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeColumns writes a table with the first column aligned left and the
// others right, two spaces apart, without trailing blanks.
func writeColumns(b *strings.Builder, header []string, rows [][]string) {
	all := append([][]string{header}, rows...)
	widths := make([]int, len(header))
	for _, r := range all {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range all {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				line.WriteString(c + pad)
				continue
			}
			line.WriteString("  " + pad + c)
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

// barWidth is the width of the longest bar of a histogram.
const barWidth = 30

// writeBins writes a run's latency histogram, a line per bin.
func writeBins(b *strings.Builder, run Named, unit string, n int) {
	h := run.Result.Latency
	bins := h.Bins(n)
	if len(bins) == 0 {
		return
	}
	fmt.Fprintf(b, "\nlatency of %s (%s %s):\n", run.Name, formatCount(h.Count()), unit)
	var most int64
	fromW, toW := 0, 0
	for _, bin := range bins {
		most = max(most, bin.Count)
		fromW = max(fromW, utf8.RuneCountInString(formatDuration(bin.From)))
		toW = max(toW, utf8.RuneCountInString(formatDuration(bin.To)))
	}
	for _, bin := range bins {
		bar := int(math.Round(float64(bin.Count) / float64(most) * barWidth))
		if bin.Count > 0 {
			bar = max(bar, 1)
		}
		from, to := formatDuration(bin.From), formatDuration(bin.To)
		pct := 100 * float64(bin.Count) / float64(h.Count())
		share := fmt.Sprintf("%.1f%%", pct)
		if bin.Count > 0 && pct < 0.05 {
			share = "<0.1%"
		}
		line := fmt.Sprintf("  %*s%s - %*s%s  %s%s  %6s",
			fromW-utf8.RuneCountInString(from), "", from, toW-utf8.RuneCountInString(to), "", to,
			strings.Repeat("█", bar), strings.Repeat(" ", barWidth-bar), share)
		b.WriteString(line + "\n")
	}
}

// formatDuration writes d with three significant digits in the largest
// unit that keeps it at least 1: 850ns, 98.3µs, 1.25ms, 12.0s.
func formatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + formatDuration(-d)
	}
	var v float64
	var unit string
	switch {
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	case d < 999500*time.Nanosecond: // rounds to below 1000µs
		v, unit = float64(d)/float64(time.Microsecond), "µs"
	case d < 999500*time.Microsecond:
		v, unit = float64(d)/float64(time.Millisecond), "ms"
	default:
		v, unit = d.Seconds(), "s"
	}
	prec := 0
	switch {
	case v < 9.995:
		prec = 2
	case v < 99.95:
		prec = 1
	}
	return strconv.FormatFloat(v, 'f', prec, 64) + unit
}

// formatAdded is a difference of latencies, signed.
func formatAdded(d time.Duration) string {
	if d < 0 {
		return formatDuration(d)
	}
	return "+" + formatDuration(d)
}

// formatCount writes n with thousands separated by commas.
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
