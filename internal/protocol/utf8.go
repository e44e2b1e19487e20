package protocol

// RuneBoundary returns the largest m <= n (and <= len(s)) such that s[:m]
// does not end inside a multi-byte UTF-8 sequence. Output travels as JSON
// strings, where a sequence cut in two becomes two U+FFFD: whoever cuts
// output into chunks, or truncates it, cuts at m instead of n. Bytes that are
// not valid UTF-8 anyway are never held back, so m is at most 3 less than n.
func RuneBoundary[T ~string | ~[]byte](s T, n int) int {
	n = max(0, min(n, len(s)))
	for i := n - 1; i >= 0 && i >= n-3; i-- {
		c := s[i]
		switch {
		case c < 0x80: // ASCII: nothing is open
			return n
		case c < 0xC0: // a continuation byte: look further back
			continue
		}
		if i+utf8SeqLen(c) > n {
			return i
		}
		return n
	}
	return n
}

// utf8SeqLen is the length of the sequence that lead byte c starts, or 1 for
// a byte that starts no valid sequence.
func utf8SeqLen(c byte) int {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2
	case c >= 0xE0 && c <= 0xEF:
		return 3
	case c >= 0xF0 && c <= 0xF4:
		return 4
	}
	return 1
}
