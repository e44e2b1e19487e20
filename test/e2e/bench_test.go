package e2e

import (
	"context"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/bench"
	"github.com/agentiso/agentiso/internal/testenv"
)

// BenchmarkAgentiso is `agentiso bench` under `go test -bench`: the same
// code (internal/bench) against a private daemon of the freshly built
// binary. With -short (what scripts/test.sh passes) it runs the short mode,
// else the full one. Every available figure's median is reported as a
// metric, and the table is logged.
func BenchmarkAgentiso(b *testing.B) {
	testenv.Require(b, "root", "qemu", "image")
	bin := agentisoBinary(b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	// One run lasts minutes, so the testing package never asks for more
	// than b.N = 1; -short picks the short mode.
	var rep *bench.Report
	for range b.N {
		r, err := bench.Run(ctx, bench.Options{Binary: bin, ImageDir: testenv.ImageDir(), Short: testing.Short(),
			Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		if err != nil {
			b.Fatal(err)
		}
		rep = r
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		b.Fatal(err)
	}
	b.Logf("\n%s", table.String())
	unit := regexp.MustCompile(`[^A-Za-z0-9/]+`)
	for _, f := range rep.Figures {
		if !f.Available() {
			continue
		}
		name := strings.Trim(unit.ReplaceAllString(f.Name, "-"), "-")
		b.ReportMetric(f.Median, name+"-"+f.Unit)
		if f.Ratio != nil {
			b.ReportMetric(*f.Ratio, name+"-ratio")
		}
	}
	for _, name := range []string{bench.FigColdBoot, bench.FigExecMCP, bench.FigExecChannel, bench.FigList} {
		if f, ok := rep.Figure(name); !ok || !f.Available() || f.Median <= 0 {
			b.Errorf("figure %q missing or not positive: %+v", name, f)
		}
	}
}

// median is the middle of ds (the upper one of an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
