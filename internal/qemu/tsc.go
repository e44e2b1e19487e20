package qemu

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// HostTSCkHz returns the host's TSC frequency in kHz, measured once per
// process against CLOCK_MONOTONIC.
//
// Under TCG the guest's TSC ticks at the host's rate, and the guest kernel's
// own early TSC calibration sometimes hangs there (6 boots in 20 on this kind
// of machine); passing the host's rate as tsc_early_khz skips it.
func HostTSCkHz() (int64, error) {
	tscOnce.Do(func() { tscKHz, tscErr = measureTSCkHz() })
	return tscKHz, tscErr
}

var (
	tscOnce sync.Once
	tscKHz  int64
	tscErr  error
)

const (
	// tscSamples intervals of tscInterval each are measured; the median wins,
	// so one preempted sample does not skew the result.
	tscSamples  = 3
	tscInterval = 20 * time.Millisecond
	// tscRoundKHz is the rounding step. The measurement is good to a few
	// tens of ppm; rounding to 10 kHz (4 ppm at 2.3 GHz) keeps the value,
	// and so the kernel command line, the same from one run to the next.
	tscRoundKHz = 10
	// maxBracket is the widest rdtsc bracket around a clock read that is
	// accepted: wider means the thread was preempted in between.
	maxBracket = 20000 // cycles, ~10 µs
)

func measureTSCkHz() (int64, error) {
	if !haveTSC {
		return 0, fmt.Errorf("measuring the TSC: not supported on %s", runtime.GOARCH)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	var samples []float64
	for range tscSamples {
		c0, t0, err := tscAndClock()
		if err != nil {
			return 0, err
		}
		time.Sleep(tscInterval)
		c1, t1, err := tscAndClock()
		if err != nil {
			return 0, err
		}
		if t1 <= t0 || c1 <= c0 {
			return 0, errors.New("measuring the TSC: counter or clock went backwards")
		}
		samples = append(samples, float64(c1-c0)/(float64(t1-t0)/1e6))
	}
	slices.Sort(samples)
	khz := int64(samples[len(samples)/2]/tscRoundKHz+0.5) * tscRoundKHz
	if khz <= 0 {
		return 0, fmt.Errorf("measuring the TSC: implausible rate %d kHz", khz)
	}
	return khz, nil
}

// tscAndClock returns a TSC reading and the CLOCK_MONOTONIC time (ns) taken
// at the same moment: the TSC is read on both sides of the clock and the
// midpoint is used; a wide bracket (preemption) is retried.
func tscAndClock() (uint64, int64, error) {
	var ts unix.Timespec
	for range 100 {
		a := rdtsc()
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			return 0, 0, fmt.Errorf("reading CLOCK_MONOTONIC: %w", err)
		}
		b := rdtsc()
		if b >= a && b-a < maxBracket {
			return a + (b-a)/2, ts.Nano(), nil
		}
	}
	return 0, 0, errors.New("measuring the TSC: could not read it next to the clock (constant preemption?)")
}
