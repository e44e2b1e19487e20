package guest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/agentiso/agentiso/internal/protocol"
)

// collect is an outputWriter's send that keeps what was sent.
type collect struct {
	chunks []string
	fail   error
}

func (c *collect) send(m *protocol.Output) error {
	if c.fail != nil {
		return c.fail
	}
	c.chunks = append(c.chunks, m.Data)
	return nil
}

func TestOutputWriterChunksAtRuneBoundaries(t *testing.T) {
	text := strings.Repeat("aé€😀", 5000) // 50 KB, 1-4 byte runes
	for _, writeSize := range []int{1, 2, 3, 7, 4096, protocol.ChunkSize + 5} {
		var c collect
		w := &outputWriter{stream: protocol.Stdout, left: 1 << 20, send: c.send}
		for rest := text; rest != ""; {
			n := min(writeSize, len(rest))
			if k, err := w.Write([]byte(rest[:n])); k != n || err != nil {
				t.Fatalf("Write = %d, %v", k, err)
			}
			rest = rest[n:]
		}
		w.flush()
		for _, ch := range c.chunks {
			if !utf8.ValidString(ch) {
				t.Fatalf("write size %d: chunk %q is not valid UTF-8", writeSize, ch)
			}
			if len(ch) > protocol.ChunkSize {
				t.Fatalf("write size %d: chunk of %d bytes", writeSize, len(ch))
			}
		}
		if got := strings.Join(c.chunks, ""); got != text {
			t.Fatalf("write size %d: output changed", writeSize)
		}
		if w.truncated {
			t.Errorf("write size %d: truncated below the limit", writeSize)
		}
	}
}

func TestOutputWriterTruncates(t *testing.T) {
	tests := []struct {
		name      string
		writes    []string
		limit     int64
		want      string
		truncated bool
	}{
		{"exactly the limit", []string{"abc", "de"}, 5, "abcde", false},
		{"one byte over", []string{"abcdef"}, 5, "abcde", true},
		{"over in a later write", []string{"abc", "def"}, 5, "abcde", true},
		{"limit inside a rune", []string{"€€"}, 5, "€", true},
		{"limit inside a rune across writes", []string{"€", "\xe2\x82", "\xac"}, 5, "€", true},
		{"incomplete rune at the end is sent", []string{"a\xe2\x82"}, 10, "a\xe2\x82", false},
		{"invalid bytes count as bytes", []string{"\xff\xfe\xfd"}, 2, "\xff\xfe", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collect
			w := &outputWriter{stream: protocol.Stderr, left: tt.limit, send: c.send}
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v: past the limit output must still be accepted", s, n, err)
				}
			}
			w.flush()
			if got := strings.Join(c.chunks, ""); got != tt.want {
				t.Errorf("sent %q, want %q", got, tt.want)
			}
			if w.truncated != tt.truncated {
				t.Errorf("truncated = %v, want %v", w.truncated, tt.truncated)
			}
		})
	}
}

func TestOutputWriterStopsWhenTheHostIsGone(t *testing.T) {
	c := collect{fail: errors.New("stream reset")}
	w := &outputWriter{stream: protocol.Stdout, left: 100, send: c.send}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write succeeded although nothing could be sent")
	}
}

func TestExecEnv(t *testing.T) {
	t.Setenv("AGENTISO_SECRET_OF_THE_AGENT", "leak")
	env, err := execEnv(map[string]string{"FOO": "persistent", "KEEP": "k"}, map[string]string{"FOO": "bar", "PATH": "/opt/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(env, "KEEP=k") {
		t.Errorf("env %q lacks the persistent KEEP=k", env)
	}
	for _, want := range []string{"FOO=bar", "PATH=/opt/bin", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %s", env, want)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "AGENTISO_") {
			t.Errorf("the agent's own environment leaked: %s", kv)
		}
	}
	if !slices.IsSorted(env) {
		t.Errorf("env not sorted: %q", env)
	}
}
