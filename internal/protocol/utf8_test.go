package protocol

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRuneBoundary(t *testing.T) {
	euro := "\u20ac"      // e2 82 ac
	smile := "\U0001F600" // f0 9f 98 80
	tests := []struct {
		s    string
		n    int
		want int
	}{
		{"", 0, 0},
		{"abc", 2, 2},
		{"abc", 10, 3},
		{"abc", -1, 0},
		{euro, 3, 3},
		{euro, 2, 0},
		{euro, 1, 0},
		{"a" + euro, 3, 1},
		{"a" + euro, 4, 4},
		{smile, 4, 4},
		{smile, 3, 0},
		{"ab" + smile, 5, 2},
		{"é", 1, 0},
		// Bytes that are not UTF-8 are not held back.
		{"a\xff", 2, 2},
		{"\x80\x80\x80", 3, 3},
		{"a\xe2\x41", 3, 3}, // a lead byte whose sequence was already broken
		{"\xc0\x80", 1, 1},  // C0 never starts a valid sequence
	}
	for _, tt := range tests {
		if got := RuneBoundary(tt.s, tt.n); got != tt.want {
			t.Errorf("RuneBoundary(%q, %d) = %d, want %d", tt.s, tt.n, got, tt.want)
		}
		if got := RuneBoundary([]byte(tt.s), tt.n); got != tt.want {
			t.Errorf("RuneBoundary([]byte(%q), %d) = %d, want %d", tt.s, tt.n, got, tt.want)
		}
	}
}

// TestRuneBoundaryChunksKeepText cuts valid text at every chunk size and
// checks no chunk is invalid: the property exec output chunking relies on.
func TestRuneBoundaryChunksKeepText(t *testing.T) {
	text := strings.Repeat("aé€😀", 50)
	for size := 4; size < 20; size++ {
		var rebuilt strings.Builder
		rest := text
		for rest != "" {
			m := RuneBoundary(rest, size)
			if m == 0 {
				t.Fatalf("size %d: no progress at %q", size, rest[:min(8, len(rest))])
			}
			if !utf8.ValidString(rest[:m]) {
				t.Fatalf("size %d: chunk %q is not valid UTF-8", size, rest[:m])
			}
			rebuilt.WriteString(rest[:m])
			rest = rest[m:]
		}
		if rebuilt.String() != text {
			t.Fatalf("size %d: text changed", size)
		}
	}
}
