package channel_test

import (
	"io"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/guest"
	"github.com/agentiso/agentiso/internal/protocol"
)

func BenchmarkPing(b *testing.B) {
	p := newPair(b, guest.Options{}, channel.Options{})
	ctx := testCtx(b)
	for b.Loop() {
		if _, err := p.c.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExecTrue(b *testing.B) {
	p := newPair(b, guest.Options{}, channel.Options{})
	ctx := testCtx(b)
	req := protocol.Exec{Argv: []string{"true"}, MaxOutputBytes: 1024}
	for b.Loop() {
		if _, err := p.c.Exec(ctx, req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// benchWindows are the host stream windows the read benchmark compares; an
// upload is bounded by the guest's window.
var benchWindows = []uint32{256 << 10, channel.DefaultStreamWindow, 4 << 20}

func BenchmarkWriteFile(b *testing.B) {
	const size = 16 << 20
	p := newPair(b, guest.Options{}, channel.Options{})
	ctx := testCtx(b)
	path := filepath.Join(b.TempDir(), "f")
	b.SetBytes(size)
	for b.Loop() {
		if err := p.c.WriteFile(ctx, path, 0, pseudoRandom(size), size); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadFile(b *testing.B) {
	const size = 16 << 20
	for _, w := range benchWindows {
		b.Run("window="+strconv.Itoa(int(w>>10))+"KiB", func(b *testing.B) {
			p := newPair(b, guest.Options{}, channel.Options{StreamWindow: w})
			ctx := testCtx(b)
			path := filepath.Join(b.TempDir(), "f")
			if err := p.c.WriteFile(ctx, path, 0, pseudoRandom(size), size); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			for b.Loop() {
				if _, err := p.c.ReadFile(ctx, path, 0, 0, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
