package guest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

func TestTailBufferKeepsTheLastBytes(t *testing.T) {
	for _, max := range []int{1, 7, 4096, 10000} {
		for _, writeSize := range []int{1, 3, 5000, 9999, 30000} {
			b := newTailBuffer(max)
			var all bytes.Buffer
			for i := 0; all.Len() < 50000; i++ {
				p := bytes.Repeat([]byte{byte('a' + i%26)}, writeSize)
				p[0] = byte('A' + i%26)
				all.Write(p)
				if n, err := b.Write(p); n != len(p) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				if cap(b.buf) > max {
					t.Fatalf("max %d: buffer grew to %d", max, cap(b.buf))
				}
			}
			got, total := b.snapshot()
			want := all.Bytes()[all.Len()-min(max, all.Len()):]
			if !bytes.Equal(got, want) || total != int64(all.Len()) {
				t.Fatalf("max %d, writes of %d: kept %d bytes (total %d), want the last %d (total %d)", max, writeSize, len(got), total, len(want), all.Len())
			}
		}
	}
}

func TestTailBufferStartsAtACharacter(t *testing.T) {
	b := newTailBuffer(5)
	b.Write([]byte("ab€€")) // 8 bytes: the tail "\x82\xac€" starts inside a €
	got, total := b.snapshot()
	if string(got) != "€" || total != 8 {
		t.Errorf("snapshot %q (total %d), want the whole last €", got, total)
	}
	quiet := newTailBuffer(1 << 20)
	if _, total := quiet.snapshot(); cap(quiet.buf) != 0 || total != 0 {
		t.Errorf("an empty buffer allocated %d bytes", cap(quiet.buf))
	}
}

// Every source of a command's environment is checked against the
// blocklist in the guest itself: the per-call env of exec and of a
// background job, and set_env's persistent variables (M-9, L-9). A refused
// request changes nothing.
func TestL9_EnvBlocklistOnEverySource(t *testing.T) {
	sess := rawSession(t, testOptions(t))
	for _, name := range []string{"LD_PRELOAD", "LD_AUDIT", "BASH_ENV", "GLIBC_TUNABLES", "NODE_OPTIONS"} {
		env := `{"` + name + `":"x"}`
		for _, req := range []string{
			`{"type":"exec","body":{"argv":["/bin/true"],"max_output_bytes":10,"env":` + env + `}}`,
			`{"type":"job_start","body":{"argv":["/bin/true"],"max_output_bytes":10,"env":` + env + `}}`,
			`{"type":"set_env","body":{"vars":` + env + `}}`,
			`{"type":"set_env","body":{"vars":{"FINE":"1","` + name + `":"x"}}}`,
		} {
			wantError(t, rawRequest(t, sess, req), errdefs.Invalid, name)
		}
	}
	m := rawRequest(t, sess, `{"type":"set_env","body":{"vars":{"OK_NAME":"1"}}}`)
	if set, ok := m.(*protocol.EnvSet); !ok || strings.Join(set.Names, ",") != "OK_NAME" {
		t.Errorf("after the refusals set_env answered %#v, want only OK_NAME held", m)
	}
	wantError(t, rawRequest(t, sess, `{"type":"job_poll","body":{"job_id":1}}`), errdefs.NotFound, "job_id")
}

// The merge of every layer is checked once more, in the one function every
// command's environment passes through.
func TestExecEnvRefusesABlockedNameFromAnyLayer(t *testing.T) {
	for _, layers := range [][]map[string]string{
		{{"LD_PRELOAD": "/x.so"}},
		{{"A": "1"}, {"BASH_ENV": "/x"}},
		{{"MALLOC_CHECK_": "1"}, nil},
	} {
		if env, err := execEnv(layers...); !errdefs.Is(err, errdefs.Invalid) {
			t.Errorf("execEnv(%v) = %q, %v; want Invalid", layers, env, err)
		}
	}
}
