// Package bench measures where the time and memory of agentiso go: it starts
// a private daemon (its own data dir, run dir and socket), drives it as an
// agent does, through `agentiso mcp` over stdio, and times the same work on
// the raw guest channel, the floor the MCP path is compared to. One Run
// gives one Report: every figure with its median and spread, and its ratio
// to a floor where there is one. `agentiso bench` and the e2e benchmark run
// the same code.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the result of one Run.
type Report struct {
	Mode      string    `json:"mode"` // "short" or "full"
	StartedAt time.Time `json:"started_at"`
	Duration  string    `json:"duration"`
	Host      Host      `json:"host"`
	Figures   []Figure  `json:"figures"`
}

// Host says what the figures were measured on.
type Host struct {
	Accel  string `json:"accel"` // as the daemon's QEMU ran: "tcg" or "kvm"
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel"`
	QEMU   string `json:"qemu"`
}

// Figure is one measured quantity.
type Figure struct {
	Name string `json:"name"`
	Unit string `json:"unit"` // "ms", "MB/s" or "MiB"
	// Samples are the single measurements, in the order taken. Empty when
	// the figure is not available (Note says why).
	Samples []float64 `json:"samples,omitempty"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	// Floor names the figure this one is bounded by; Ratio is this median
	// over the floor's (higher is slower for times, faster for throughput).
	Floor string   `json:"floor,omitempty"`
	Ratio *float64 `json:"ratio,omitempty"`
	// BestRatio compares the best samples (the least time, the most
	// throughput): on a shared, loaded host the one least disturbed.
	BestRatio *float64 `json:"best_ratio,omitempty"`
	// Target is the goal for this figure, Met whether this run met it.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Available reports whether the figure was measured.
func (f Figure) Available() bool { return len(f.Samples) > 0 }

// newFigure summarises samples.
func newFigure(name, unit string, samples []float64) Figure {
	f := Figure{Name: name, Unit: unit, Samples: samples}
	if len(samples) == 0 {
		return f
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	f.Min, f.Max = s[0], s[len(s)-1]
	if n := len(s); n%2 == 1 {
		f.Median = s[n/2]
	} else {
		f.Median = (s[n/2-1] + s[n/2]) / 2
	}
	return f
}

// unavailable is a figure this run could not measure, and why.
func unavailable(name, unit, why string) Figure {
	return Figure{Name: name, Unit: unit, Note: why}
}

// withFloor sets f's floor and ratio.
func (f Figure) withFloor(floor Figure) Figure {
	f.Floor = floor.Name
	if f.Available() && floor.Available() && floor.Median != 0 {
		r := f.Median / floor.Median
		f.Ratio = &r
		b := f.best() / floor.best()
		f.BestRatio = &b
	}
	return f
}

// best is the least time or the most throughput.
func (f Figure) best() float64 {
	if f.Unit == "MB/s" {
		return f.Max
	}
	return f.Min
}

// withTarget records the target and whether ok says it was met; a figure
// that was not measured has no verdict.
func (f Figure) withTarget(target string, ok func(Figure) bool) Figure {
	f.Target = target
	if f.Available() {
		m := ok(f)
		f.Met = &m
	}
	return f
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mbps is a throughput in MB/s (10^6 bytes) for n bytes moved in d.
func mbps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

// Figure looks a figure up by name.
func (r *Report) Figure(name string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f, true
		}
	}
	return Figure{}, false
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as an aligned text table, one figure a row.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "agentiso bench (%s mode), %s, %d CPUs, %s, %s; took %s\n",
		r.Mode, r.Host.Accel, r.Host.CPUs, r.Host.QEMU, r.StartedAt.UTC().Format(time.RFC3339), r.Duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tunit\tn\tmedian\tmin\tmax\tfloor\tratio\tbest ratio\ttarget\tmet")
	for _, f := range r.Figures {
		if !f.Available() {
			fmt.Fprintf(tw, "%s\t%s\t0\tn/a\t\t\t%s\t\t\t%s\t\t%s\n", f.Name, f.Unit, f.Floor, f.Target, f.Note)
			continue
		}
		ratio, bestRatio, met := "", "", ""
		if f.Ratio != nil {
			ratio = fmt.Sprintf("%.2fx", *f.Ratio)
			bestRatio = fmt.Sprintf("%.2fx", *f.BestRatio)
		}
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*f.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Unit, len(f.Samples),
			num(f.Median), num(f.Min), num(f.Max), f.Floor, ratio, bestRatio, f.Target, met)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var notes []string
	for _, f := range r.Figures {
		if f.Available() && f.Note != "" {
			notes = append(notes, fmt.Sprintf("  %s: %s", f.Name, f.Note))
		}
	}
	if len(notes) > 0 {
		_, err := fmt.Fprintf(w, "notes:\n%s\n", strings.Join(notes, "\n"))
		return err
	}
	return nil
}

// num prints a figure with about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
