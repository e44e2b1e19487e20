package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkCreatePaths measures, in one run, the three ways a default-size
// workspace comes to be, as an agent sees them (the workspace_create call
// to its answer, guest answering with its identity applied): a cold boot
// (a daemon without template or pool), a restore of the memory template,
// and a claim from the warm pool (a second daemon with both). Each
// iteration is a round of all three, each workspace destroyed before the
// next, and every measurement starts with the pool full and idle, so no
// boot competes with the one measured. The metrics are the medians over
// the rounds and the ratios of the medians; run with -benchtime=3x.
func BenchmarkCreatePaths(b *testing.B) {
	const res = "\n[resources]\ndefault_memory_mb = 256\n"
	cold := startDaemon(b, res+"\n[pool]\ntemplate = false\n")
	fast := startDaemonOpts(b, "", res+"\n[pool]\nenabled = true\nsize = 1\nmax_memory_mb = 256\ntemplate = true\n", daemonOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	ready := waitLog(b, fast, "pool VM ready", 0, 5*time.Minute)
	waitLog(b, fast, "memory template built", 0, time.Minute)
	cs, fs := cold.client(ctx), fast.client(ctx)

	var coldT, tmplT, poolT []time.Duration
	var coldBoot, tmplBoot, poolBoot []time.Duration
	i := 0
	create := func(d *daemon, args map[string]any) (time.Duration, time.Duration, poolWS) {
		s := cs
		if d == fast {
			s = fs
		}
		start := time.Now()
		w := call[poolWS](ctx, b, s, "workspace_create", args)
		took := time.Since(start)
		if got := sh(ctx, b, s, w.ID, "hostname"); got != w.Name {
			b.Fatalf("%s: hostname %q", w.Name, got)
		}
		call[map[string]any](ctx, b, s, "workspace_destroy", map[string]any{"workspace_id": w.ID})
		return took, time.Duration(w.BootTimeMs) * time.Millisecond, w
	}
	for b.Loop() {
		i++
		t, bt, _ := create(cold, map[string]any{"name": fmt.Sprintf("cold-%d", i)})
		coldT, coldBoot = append(coldT, t), append(coldBoot, bt)

		t, bt, _ = create(fast, map[string]any{"name": fmt.Sprintf("tmpl-%d", i)})
		tmplT, tmplBoot = append(tmplT, t), append(tmplBoot, bt)

		t, bt, w := create(fast, map[string]any{"name": fmt.Sprintf("pool-%d", i), "from_pool": true})
		if !w.FromPool {
			b.Fatalf("the pool was full and idle, yet %s did not come from it", w.Name)
		}
		poolT, poolBoot = append(poolT, t), append(poolBoot, bt)
		ready = waitLog(b, fast, "pool VM ready", ready, 5*time.Minute)
	}
	if n := strings.Count(fast.Log(), "from_template=true"); n != len(tmplT) {
		b.Fatalf("%d of %d template creates restored the template", n, len(tmplT))
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	c, tm, p := median(coldT), median(tmplT), median(poolT)
	b.ReportMetric(ms(c), "cold-ms")
	b.ReportMetric(ms(tm), "template-ms")
	b.ReportMetric(ms(p), "pool-ms")
	b.ReportMetric(float64(c)/float64(tm), "cold/template")
	b.ReportMetric(float64(c)/float64(p), "cold/pool")
	b.ReportMetric(ms(median(coldBoot)), "cold-boot-ms")
	b.ReportMetric(ms(median(tmplBoot)), "template-boot-ms")
	b.ReportMetric(ms(median(poolBoot)), "pool-claim-ms")
	b.ReportMetric(0, "ns/op")
}
