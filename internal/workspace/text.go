package workspace

import "unicode/utf8"

// TextOf returns data as text when it is text: valid UTF-8 without NUL
// bytes. When more of the file follows, an incomplete character at the end
// (cut by a read limit) is dropped rather than making the whole read
// binary. Every edge that shows file content uses it.
func TextOf(data []byte, more bool) (string, bool) {
	if more {
		for i := 0; i < utf8.UTFMax-1 && len(data) > 0; i++ {
			r, _ := utf8.DecodeLastRune(data)
			if r != utf8.RuneError {
				break
			}
			data = data[:len(data)-1]
		}
	}
	for _, b := range data {
		if b == 0 {
			return "", false
		}
	}
	if !utf8.Valid(data) {
		return "", false
	}
	return string(data), true
}
