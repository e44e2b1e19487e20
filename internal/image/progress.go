package image

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Step is a progress report from Build: each step is reported when it
// starts and again when it is done.
type Step struct {
	// Index counts from 1 to Total.
	Index, Total int
	Name         string
	// Done is false when the step starts and true when it ends.
	Done bool
	// Cached says the step's result came from the cache and nothing ran.
	Cached bool
	// Elapsed is the step's duration, once Done.
	Elapsed time.Duration
	// Detail says what the step found or made, e.g. the kernel version.
	Detail string
}

// String renders the step as one line, e.g. "[5/9] debootstrap rootfs..."
// or "[5/9] debootstrap rootfs: done in 1m52s (191 packages)".
func (s Step) String() string {
	head := fmt.Sprintf("[%d/%d] %s", s.Index, s.Total, s.Name)
	var line string
	switch {
	case !s.Done:
		line = head + "..."
	case s.Cached:
		line = head + ": cached"
	default:
		line = fmt.Sprintf("%s: done in %s", head, roundElapsed(s.Elapsed))
	}
	if s.Detail != "" {
		line += " (" + s.Detail + ")"
	}
	return line
}

func roundElapsed(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}

// ProgressWriter returns a progress callback that writes each step to w as
// a line, for a command-line user.
func ProgressWriter(w io.Writer) func(Step) {
	var mu sync.Mutex
	return func(s Step) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(w, s.String())
	}
}

// progress numbers the steps of one build and times them.
type progress struct {
	report func(Step)
	total  int
	index  int
	name   string
	start  time.Time
}

func (p *progress) begin(name string) {
	p.index++
	p.name, p.start = name, time.Now()
	p.send(Step{Index: p.index, Total: p.total, Name: name})
}

// done ends the current step; detail may be empty.
func (p *progress) done(detail string) time.Duration {
	d := time.Since(p.start)
	p.send(Step{Index: p.index, Total: p.total, Name: p.name, Done: true, Elapsed: d, Detail: detail})
	return d
}

// doneCached ends the current step, which found its result in the cache.
func (p *progress) doneCached(detail string) {
	p.send(Step{Index: p.index, Total: p.total, Name: p.name, Done: true, Cached: true, Detail: detail})
}

// upToDate reports that the whole build was unnecessary, as the last step.
func (p *progress) upToDate(detail string) {
	p.index = p.total
	p.send(Step{Index: p.index, Total: p.total, Name: "image up to date", Done: true, Cached: true, Detail: detail})
}

// cached reports a step that the cache made unnecessary.
func (p *progress) cached(name, detail string) {
	p.index++
	p.send(Step{Index: p.index, Total: p.total, Name: name, Done: true, Cached: true, Detail: detail})
}

func (p *progress) send(s Step) {
	if p.report != nil {
		p.report(s)
	}
}
