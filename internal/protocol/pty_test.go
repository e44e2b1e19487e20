package protocol

import (
	"strings"
	"testing"
)

func TestPTYMessagesAreValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
		want string
	}{
		{"zero size", &PTYOpen{}, "rows, cols"},
		{"too wide", &PTYResize{Rows: 10, Cols: MaxPTYDim + 1}, "rows, cols"},
		{"relative workdir", &PTYOpen{Rows: 1, Cols: 1, Workdir: "tmp"}, "workdir"},
		{"blocked env", &PTYOpen{Rows: 1, Cols: 1, Env: map[string]string{"LD_PRELOAD": "/x.so"}}, "LD_PRELOAD"},
		{"NUL in argv", &PTYOpen{Rows: 1, Cols: 1, Argv: []string{"sh", "a\x00"}}, "argv[1]"},
		{"input too big", &PTYInput{Data: make([]byte, ChunkSize+1)}, "data"},
		{"output too big", &PTYOutput{Data: make([]byte, ChunkSize+1)}, "data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Encode(tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Encode = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
