package guest

import (
	"sync"
	"unicode/utf8"
)

// tailBuffer keeps the last max bytes written to it, and counts them all:
// a background job's output so far, bounded however much the job writes
// (finding M-10). It allocates as output arrives, so a quiet job costs
// little.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte // up to max bytes; once full, a ring starting at head
	head  int
	total int64
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

// Write implements io.Writer; it never fails.
func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += int64(n)
	if len(p) >= b.max {
		b.grow(b.max)
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		b.head = 0
		return n, nil
	}
	if room := b.max - len(b.buf); room > 0 {
		take := min(room, len(p))
		b.grow(len(b.buf) + take)
		b.buf = append(b.buf, p[:take]...)
		p = p[take:]
	}
	for len(p) > 0 {
		c := copy(b.buf[b.head:], p)
		p = p[c:]
		b.head = (b.head + c) % b.max
	}
	return n, nil
}

// grow makes room for n bytes, doubling but never past max.
func (b *tailBuffer) grow(n int) {
	if n <= cap(b.buf) {
		return
	}
	c := min(b.max, max(n, 2*cap(b.buf), 4<<10))
	nb := make([]byte, len(b.buf), c)
	copy(nb, b.buf)
	b.buf = nb
}

func (b *tailBuffer) flush() {}

// snapshot returns a copy of what is kept, oldest first, and the count of
// bytes written in all. When older output was dropped, the copy starts at
// a character boundary rather than inside a UTF-8 sequence.
func (b *tailBuffer) snapshot() ([]byte, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]byte, 0, len(b.buf))
	out = append(out, b.buf[b.head:]...)
	out = append(out, b.buf[:b.head]...)
	if b.total > int64(len(out)) {
		for i := 0; i < utf8.UTFMax-1 && len(out) > 0 && !utf8.RuneStart(out[0]); i++ {
			out = out[1:]
		}
	}
	return out, b.total
}

// counts returns the bytes written in all and the bytes kept.
func (b *tailBuffer) counts() (total, kept int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total, int64(len(b.buf))
}
