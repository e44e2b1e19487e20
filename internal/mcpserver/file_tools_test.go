package mcpserver

import "testing"

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint32
		wantErr bool
	}{
		{"", 0, false},
		{"0644", 0o644, false},
		{"755", 0o755, false},
		{"4755", 0o4755, false},
		{"0888", 0, true},
		{"rwx", 0, true},
		{"17777", 0, true},
		{"-1", 0, true},
	} {
		got, err := parseMode(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseMode(%q) = %o, %v; want %o, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestTextOf(t *testing.T) {
	check := "✓" // 3 bytes
	for _, tc := range []struct {
		name   string
		data   []byte
		more   bool
		want   string
		wantOK bool
	}{
		{"ascii", []byte("hello"), false, "hello", true},
		{"utf8", []byte("a" + check), false, "a" + check, true},
		{"nul is binary", []byte("a\x00b"), false, "", false},
		{"invalid utf8 is binary", []byte{0xff, 0xfe}, false, "", false},
		{"cut character dropped when more follows", []byte("a" + check)[:3], true, "a", true},
		{"cut character at the real end is binary", []byte("a" + check)[:3], false, "", false},
	} {
		got, ok := textOf(tc.data, tc.more)
		if ok != tc.wantOK || got != tc.want {
			t.Errorf("%s: textOf = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}
