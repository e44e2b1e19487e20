package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/testenv"
)

func TestKernelDependency(t *testing.T) {
	tests := map[string]string{
		"linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)":                                       "linux-image-6.1.0-56-cloud-amd64=6.1.192-2",
		"linux-image-6.1.0-56-cloud-amd64":                                                     "linux-image-6.1.0-56-cloud-amd64",
		"kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool": "",
		"": "",
		"foo, linux-image-6.12.0-1-cloud-amd64 (= 6.12.1-1) | linux-image-other": "linux-image-6.12.0-1-cloud-amd64=6.12.1-1",
	}
	for in, want := range tests {
		if got := kernelDependency(in); got != want {
			t.Errorf("kernelDependency(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseControl(t *testing.T) {
	in := "Package: linux-image-cloud-amd64\nVersion: 6.1.192-2\nDescription: Linux\n for cloud\n" +
		"SHA256: 00be\n\nPackage: second-stanza\n"
	want := map[string]string{
		"Package": "linux-image-cloud-amd64", "Version": "6.1.192-2", "Description": "Linux", "SHA256": "00be",
	}
	if diff := cmp.Diff(want, parseControl([]byte(in))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// fakeBzImage wraps payload (which gets the uncompressed size appended, as
// the kernel build does) in a minimal bzImage setup header.
func fakeBzImage(payload []byte, size uint32) []byte {
	const setupSects = 3
	start := (setupSects + 1) * 512
	bz := make([]byte, start)
	bz[bzSetupSects] = setupSects
	copy(bz[bzHeaderMagic:], "HdrS")
	le := binary.LittleEndian
	le.PutUint16(bz[bzVersion:], 0x020f)
	le.PutUint32(bz[bzPayloadOffset:], 16)
	le.PutUint32(bz[bzPayloadLength:], uint32(len(payload)+4))
	bz = append(bz, make([]byte, 16)...)
	bz = append(bz, payload...)
	bz = le.AppendUint32(bz, size)
	return append(bz, "trailing setup data"...)
}

func TestBzPayload(t *testing.T) {
	p, size, err := bzPayload(fakeBzImage([]byte("\x02\x21\x4c\x18payload"), 12345))
	if err != nil {
		t.Fatal(err)
	}
	if string(p) != "\x02\x21\x4c\x18payload" || size != 12345 {
		t.Errorf("got %q, size %d", p, size)
	}

	bad := map[string][]byte{
		"too short": []byte("MZ"),
		"no HdrS":   make([]byte, 4096),
		"old header": func() []byte {
			b := fakeBzImage([]byte("xxxxxxxx"), 1)
			b[bzVersion] = 0x04
			b[bzVersion+1] = 0x02
			return b
		}(),
		"payload past the end": func() []byte {
			b := fakeBzImage([]byte("xxxxxxxx"), 1)
			binary.LittleEndian.PutUint32(b[bzPayloadLength:], 1<<30)
			return b
		}(),
	}
	for name, b := range bad {
		if _, _, err := bzPayload(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestExtractVmlinux compresses a pretend kernel the way the kernel build
// does (lz4 legacy format, size appended), wraps it in a bzImage and checks
// that the exact bytes come back out.
func TestExtractVmlinux(t *testing.T) {
	testenv.Require(t, "image-tools")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	vmlinux := append([]byte("\x7fELF"), make([]byte, 3<<20)...)
	if _, err := rand.Read(vmlinux[1<<20 : 2<<20]); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "vmlinux.bin")
	must(t, os.WriteFile(raw, vmlinux, 0o644))
	lz := filepath.Join(dir, "vmlinux.lz4")
	if _, err := hostcmd.Run(ctx, "lz4", "-l", "-q", "-f", raw, lz); err != nil {
		t.Fatal(err)
	}
	payload, err := os.ReadFile(lz)
	must(t, err)
	bz := filepath.Join(dir, "vmlinuz")
	must(t, os.WriteFile(bz, fakeBzImage(payload, uint32(len(vmlinux))), 0o644))

	out := filepath.Join(dir, "kernel")
	format, err := extractVmlinux(ctx, bz, out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	must(t, err)
	if format != "lz4" || !bytes.Equal(got, vmlinux) {
		t.Errorf("format %s, %d bytes back (equal: %v)", format, len(got), bytes.Equal(got, vmlinux))
	}

	// A size that disagrees (a truncated or different payload) is refused.
	must(t, os.WriteFile(bz, fakeBzImage(payload, uint32(len(vmlinux)+1)), 0o644))
	if _, err := extractVmlinux(ctx, bz, filepath.Join(dir, "kernel2")); err == nil {
		t.Error("a size mismatch was accepted")
	}
	// An unknown compression is an error (the builder then keeps the bzImage).
	must(t, os.WriteFile(bz, fakeBzImage([]byte("\x1f\x8b\x08\x00gzip-ish"), 100), 0o644))
	if _, err := extractVmlinux(ctx, bz, filepath.Join(dir, "kernel3")); err == nil {
		t.Error("an unsupported format was accepted")
	}
}
