package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/testdaemon"
)

func TestNewFigureMedianAndSpread(t *testing.T) {
	odd := newFigure("x", "ms", []float64{5, 1, 3})
	if odd.Median != 3 || odd.Min != 1 || odd.Max != 5 {
		t.Errorf("odd: %+v", odd)
	}
	even := newFigure("x", "ms", []float64{4, 1, 2, 10})
	if even.Median != 3 || even.Min != 1 || even.Max != 10 {
		t.Errorf("even: %+v", even)
	}
	if s := even.Samples; s[0] != 4 || s[3] != 10 {
		t.Errorf("samples were reordered: %v", s)
	}
}

func TestFloorRatioAndTarget(t *testing.T) {
	floor := newFigure("raw", "ms", []float64{2, 2, 2})
	f := newFigure("mcp", "ms", []float64{5, 7, 6}).withFloor(floor).
		withTarget("<= 3x", func(f Figure) bool { return *f.Ratio <= 3 })
	if f.Ratio == nil || *f.Ratio != 3 || *f.BestRatio != 2.5 || f.Floor != "raw" || f.Met == nil || !*f.Met {
		t.Fatalf("%+v", f)
	}
	f = newFigure("mcp", "ms", []float64{9}).withFloor(floor).
		withTarget("<= 3x", func(f Figure) bool { return *f.Ratio <= 3 })
	if *f.Ratio != 4.5 || *f.Met {
		t.Fatalf("%+v", f)
	}
	// A figure that was not measured has no ratio and no verdict, and the
	// table says n/a with the reason instead of a number.
	u := unavailable("pool", "ms", "not on main").withFloor(floor).withTarget("<= 0.1x", nil)
	if u.Ratio != nil || u.Met != nil || u.Available() {
		t.Fatalf("%+v", u)
	}
	rep := &Report{Mode: "short", Host: Host{Accel: "tcg"}, Figures: []Figure{f, floor, u}}
	var tab bytes.Buffer
	if err := rep.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4.50x", "NO", "n/a", "not on main", "tcg"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tab.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Figures) != 3 || *back.Figures[0].Ratio != 4.5 {
		t.Fatalf("json round trip: %v %s", err, js.String())
	}
}

func TestBestRatioOfThroughputIsOfMaxima(t *testing.T) {
	floor := newFigure("raw", "MB/s", []float64{10, 20})
	f := newFigure("mcp", "MB/s", []float64{5, 15}).withFloor(floor)
	if *f.Ratio != 10.0/15 || *f.BestRatio != 15.0/20 {
		t.Fatalf("%+v", f)
	}
}

func TestBootsFromLog(t *testing.T) {
	d := &daemon{Daemon: &testdaemon.Daemon{LogPath: filepath.Join(t.TempDir(), "log")}}
	log := `time=2026-11-29T05:00:00Z level=INFO msg="qemu started" vm=a pid=1 accel=tcg
time=2026-11-29T05:00:02Z level=INFO msg="vm ready" vm=a boot=2.1s kernel_to_init=1.5s init_to_ready=300ms resumed=40ms guest_uptime=1.9s
time=2026-11-29T05:00:04Z level=INFO msg="vm ready" vm=b boot=900ms kernel_to_init=600ms
`
	if err := os.WriteFile(d.LogPath, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	b := d.boots()
	if got := b["a"]; got.Ready != 2100*time.Millisecond || got.KernelToInit != 1500*time.Millisecond || got.InitToReady != 300*time.Millisecond || got.Resumed != 40*time.Millisecond || got.Uptime != 1900*time.Millisecond {
		t.Errorf("a: %+v", got)
	}
	if got := b["b"]; got.Ready != 900*time.Millisecond || got.InitToReady != 0 {
		t.Errorf("b: %+v", got)
	}
	if a := d.accel(); a != "tcg" {
		t.Errorf("accel %q", a)
	}
}

func TestMeminfoKB(t *testing.T) {
	text := "MemTotal:         245000 kB\nMemFree:  1000 kB\nMemAvailable:     200000 kB\n"
	if v := meminfoKB(text, "MemAvailable:"); v != 200000 {
		t.Errorf("MemAvailable %v", v)
	}
	if v := meminfoKB(text, "Pss:"); v != 0 {
		t.Errorf("missing key gave %v", v)
	}
}
