package qemu

// rdtsc reads the time stamp counter, after earlier loads have completed
// (LFENCE), so the read is not moved across the clock reads around it.
func rdtsc() uint64

const haveTSC = true
