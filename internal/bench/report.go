package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Aim is a workload's target from the performance issue, judged on the
// medians. At most one field is set; the zero Aim is no target.
type Aim struct {
	// MinRatio: portcullis/direct must be at least this (throughput).
	MinRatio float64
	// MaxAdded: portcullis - direct must be at most this, in the
	// workload's unit (latency).
	MaxAdded float64
	// MaxValue: portcullis must be at most this, in the workload's unit
	// (memory).
	MaxValue float64
}

// Format is the aim as the report shows it, e.g. "≥ 0.77×", "≤ +50 µs".
func (a Aim) Format(unit string) string {
	switch {
	case a.MinRatio > 0:
		return fmt.Sprintf("≥ %.2f×", a.MinRatio)
	case a.MaxAdded > 0:
		return fmt.Sprintf("≤ +%s %s", strconv.FormatFloat(a.MaxAdded, 'f', -1, 64), unit)
	case a.MaxValue > 0:
		return fmt.Sprintf("≤ %s %s", strconv.FormatFloat(a.MaxValue, 'f', -1, 64), unit)
	}
	return ""
}

// Result is one line of the report: a workload's medians on both sides.
type Result struct {
	// ID is a stable short name for scripts, e.g. "pgbench_select_c8".
	ID   string `json:"id"`
	Name string `json:"name"`
	Unit string `json:"unit"`
	// LowerIsBetter marks latency and memory figures.
	LowerIsBetter bool `json:"lower_is_better,omitempty"`
	// Direct and Portcullis are the medians of the rounds; Direct is nil
	// where a workload has no direct counterpart (memory, agents).
	Direct     *float64 `json:"direct"`
	Portcullis *float64 `json:"portcullis"`
	// Ratio is portcullis/direct, for throughput and latency alike.
	Ratio *float64 `json:"ratio"`
	// Added is portcullis - direct, for latency.
	Added *float64 `json:"added,omitempty"`
	// Aim is the target as text; MeetsAim whether the medians reach it.
	Aim      string `json:"aim,omitempty"`
	MeetsAim *bool  `json:"meets_aim,omitempty"`
	// The figures of every recorded round, in the order they ran.
	DirectRounds     []float64 `json:"direct_rounds,omitempty"`
	PortcullisRounds []float64 `json:"portcullis_rounds,omitempty"`
	// Parts splits Portcullis, e.g. {"proxy": .., "agent": ..} for memory.
	Parts map[string]float64 `json:"parts,omitempty"`
	// CPU is what the daemons spent on the work through Portcullis.
	CPU *CPUCost `json:"cpu,omitempty"`
	// Note says what else is worth knowing about the figure.
	Note string `json:"note,omitempty"`
	// Error is why the workload has no figures.
	Error string `json:"error,omitempty"`
}

// NewResult fills Ratio, Added (when showAdded) and the aim from the two
// medians; direct may be NaN for none.
func NewResult(id, name, unit string, direct, portcullis float64, aim Aim, lowerIsBetter, showAdded bool) Result {
	r := Result{ID: id, Name: name, Unit: unit, LowerIsBetter: lowerIsBetter, Aim: aim.Format(unit)}
	if !math.IsNaN(portcullis) {
		r.Portcullis = ptr(portcullis)
	}
	if !math.IsNaN(direct) {
		r.Direct = ptr(direct)
	}
	if r.Direct != nil && r.Portcullis != nil {
		if direct != 0 {
			r.Ratio = ptr(portcullis / direct)
		}
		if showAdded {
			r.Added = ptr(portcullis - direct)
		}
	}
	var met *bool
	switch {
	case aim.MinRatio > 0 && r.Ratio != nil:
		met = ptr(*r.Ratio >= aim.MinRatio)
	case aim.MaxAdded > 0 && r.Direct != nil && r.Portcullis != nil:
		met = ptr(portcullis-direct <= aim.MaxAdded)
	case aim.MaxValue > 0 && r.Portcullis != nil:
		met = ptr(portcullis <= aim.MaxValue)
	}
	r.MeetsAim = met
	return r
}

// CPUCost is each daemon's CPU time per unit of a throughput figure (a
// transaction of TPS, a MiB of MiB/s): the median over the proxied rounds
// of the daemon's CPU time in the round over the work done in it (the
// round's figure times its length). Unlike the throughput itself, it
// hardly moves with what else the machine is doing, so it is the figure to
// compare builds by.
type CPUCost struct {
	Unit  string  `json:"unit"` // e.g. "µs per transaction"
	Proxy float64 `json:"proxy"`
	Agent float64 `json:"agent"`
	Auth  float64 `json:"auth"`
}

// cpuUnits says, for each throughput unit, what CPUCost counts per unit
// and the scale from seconds of CPU per unit of work to it.
var cpuUnits = map[string]struct {
	unit  string
	scale float64
}{
	"TPS":       {"µs per transaction", 1e6},
	"queries/s": {"µs per query", 1e6},
	"MiB/s":     {"ms per MiB", 1e3},
}

// NewCPUCost is the CPU cost of the work measured by the Portcullis rounds
// of a throughput figure in unit (see cpuUnits), from busy (Samples.Busy)
// and the rounds' figures; nil when either is missing.
func NewCPUCost(unit string, busy map[string][]float64, rounds []float64) *CPUCost {
	u, ok := cpuUnits[unit]
	if !ok || busy == nil || len(rounds) == 0 {
		return nil
	}
	per := func(daemon string) float64 {
		shares := busy[daemon]
		var xs []float64
		for i, share := range shares {
			if i < len(rounds) && rounds[i] > 0 {
				xs = append(xs, share/rounds[i]*u.scale)
			}
		}
		return Median(xs)
	}
	c := &CPUCost{Unit: u.unit, Proxy: per("proxy"), Agent: per("agent"), Auth: per("auth")}
	if math.IsNaN(c.Proxy) || math.IsNaN(c.Agent) || math.IsNaN(c.Auth) {
		return nil
	}
	return c
}

// Failed is a result for a workload that could not be measured.
func Failed(id, name, unit string, aim Aim, err error) Result {
	return Result{ID: id, Name: name, Unit: unit, Aim: aim.Format(unit), Error: err.Error()}
}

func ptr[T any](v T) *T { return &v }

// nanFloat stands for "no figure".
func nanFloat() float64 { return math.NaN() }

// Report is a whole run of the suite.
type Report struct {
	Command   string    `json:"command"`
	Date      time.Time `json:"date"`
	Quick     bool      `json:"quick"`
	Rounds    int       `json:"rounds"`
	Elapsed   float64   `json:"elapsed_seconds"`
	Machine   Machine   `json:"machine"`
	Workloads []Result  `json:"workloads"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// cells are a result's columns as the text and markdown tables show them.
func (res *Result) cells() (direct, portcullis, ratio, aim string) {
	direct, portcullis, ratio = "–", "–", "–"
	if res.Error != "" {
		portcullis = "failed"
	}
	if res.Direct != nil {
		direct = formatValue(*res.Direct)
	}
	if res.Portcullis != nil {
		portcullis = formatValue(*res.Portcullis)
	}
	if res.Ratio != nil {
		ratio = fmt.Sprintf("%.2f×", *res.Ratio)
	}
	if res.Added != nil {
		ratio += fmt.Sprintf(" (%+.1f %s)", *res.Added, res.Unit)
	}
	aim = res.Aim
	if aim == "" {
		aim = "–"
	} else if res.MeetsAim != nil {
		if *res.MeetsAim {
			aim += " ✓"
		} else {
			aim += " ✗"
		}
	}
	return direct, portcullis, ratio, aim
}

// notes are the lines under a table: each result's note, parts and error.
func (r *Report) notes() []string {
	var out []string
	for _, res := range r.Workloads {
		var parts []string
		if len(res.Parts) > 0 {
			for _, k := range []string{"proxy", "agent"} {
				if v, ok := res.Parts[k]; ok {
					parts = append(parts, fmt.Sprintf("%s %s %s", k, formatValue(v), res.Unit))
				}
			}
		}
		text := strings.Join(parts, " + ")
		if c := res.CPU; c != nil {
			if text != "" {
				text += "; "
			}
			text += fmt.Sprintf("CPU %s: proxy %s, agent %s, auth %s", c.Unit, formatValue(c.Proxy), formatValue(c.Agent), formatValue(c.Auth))
		}
		if res.Note != "" {
			if text != "" {
				text += "; "
			}
			text += res.Note
		}
		if res.Error != "" {
			if text != "" {
				text += "; "
			}
			text += "failed: " + res.Error
		}
		if text != "" {
			out = append(out, res.Name+": "+text)
		}
	}
	return out
}

// WriteText writes the table for a terminal, then the notes.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tdirect\tportcullis\tratio\taim\tunit")
	for i := range r.Workloads {
		res := &r.Workloads[i]
		d, p, ratio, aim := res.cells()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", res.Name, d, p, ratio, aim, res.Unit)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if notes := r.notes(); len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "- "+firstLine(n))
		}
	}
	_, err := fmt.Fprintf(w, "\n%s, %d cores, %s; %s; %s in %.0fs\n", r.Machine.CPU, r.Machine.Cores,
		FormatBytes(r.Machine.MemoryBytes), r.Machine.GoVersion, r.Command, r.Elapsed)
	return err
}

// WriteMarkdown writes BENCHMARKS.md: the table, the notes, the machine
// and the command.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Portcullis against a direct connection to the same database, on the same machine, in the same run. " +
		"Direct is TLS with a client certificate straight to the database; Portcullis is the same client through the proxy, " +
		"the reverse tunnel and the database agent (Auth, proxy and agent as separate processes). " +
		"Direct and proxied rounds are interleaved; each figure is the median of its rounds. " +
		"Ratios are portcullis/direct; aims are from issue #6 (✓ met, ✗ not met).\n\n")
	b.WriteString("| workload | direct | portcullis | ratio | aim | unit |\n|---|---:|---:|---:|---|---|\n")
	for i := range r.Workloads {
		res := &r.Workloads[i]
		d, p, ratio, aim := res.cells()
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", mdEscape(res.Name), d, p, ratio, mdEscape(aim), res.Unit)
	}
	if notes := r.notes(); len(notes) > 0 {
		b.WriteString("\n")
		for _, n := range notes {
			b.WriteString("- " + mdEscape(firstLine(n)) + "\n")
		}
	}
	m := r.Machine
	b.WriteString("\n## Machine\n\n")
	rows := [][2]string{
		{"CPU", fmt.Sprintf("%s, %d cores", m.CPU, m.Cores)},
		{"Memory", FormatBytes(m.MemoryBytes)},
		{"Kernel", m.Kernel},
		{"Go", m.GoVersion},
		{"PostgreSQL", m.PostgreSQL},
		{"pgbench", m.Pgbench},
		{"MariaDB", m.MariaDB},
		{"Commit", m.Commit},
		{"Date", r.Date.UTC().Format(time.RFC3339)},
		{"Duration", (time.Duration(r.Elapsed) * time.Second).String()},
	}
	for _, row := range rows {
		if row[1] != "" {
			fmt.Fprintf(&b, "- %s: %s\n", row[0], mdEscape(row[1]))
		}
	}
	fmt.Fprintf(&b, "\n## Command\n\n```sh\n%s\n```\n", r.Command)
	_, err := io.WriteString(w, b.String())
	return err
}

// formatValue shows a figure with about three significant digits.
func formatValue(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "–"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
