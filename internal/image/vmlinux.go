package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentiso/agentiso/internal/hostcmd"
)

// bzImage setup header fields (Documentation/arch/x86/boot.rst).
const (
	bzSetupSects    = 0x1f1
	bzHeaderMagic   = 0x202 // "HdrS"
	bzVersion       = 0x206
	bzPayloadOffset = 0x248
	bzPayloadLength = 0x24c
	// payload_offset and payload_length exist from boot protocol 2.08.
	bzMinVersion = 0x0208
)

// decompressor is a host program that decompresses one kernel payload
// format, given as argv before the input and output paths.
type decompressor struct {
	format string
	magic  []byte
	argv   func(in, out string) []string
}

// decompressors are the payload formats extractVmlinux handles. Debian's
// kernels use LZ4.
var decompressors = []decompressor{
	{"lz4", []byte{0x02, 0x21, 0x4c, 0x18}, func(in, out string) []string { return []string{"unlz4", "-q", "-f", in, out} }},
	{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}, func(in, out string) []string { return []string{"zstd", "-q", "-d", "-f", in, "-o", out} }},
}

// bzPayload returns the compressed kernel inside a bzImage and the size the
// kernel build appended to it (the uncompressed size, little-endian 32-bit).
func bzPayload(bz []byte) (payload []byte, size uint32, err error) {
	if len(bz) < 0x250 || string(bz[bzHeaderMagic:bzHeaderMagic+4]) != "HdrS" {
		return nil, 0, errors.New("not a bzImage")
	}
	le := binary.LittleEndian
	if v := le.Uint16(bz[bzVersion:]); v < bzMinVersion {
		return nil, 0, fmt.Errorf("boot protocol %#x is older than 2.08", v)
	}
	setupSects := int(bz[bzSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects + 1) * 512
	off := start + int(le.Uint32(bz[bzPayloadOffset:]))
	n := int(le.Uint32(bz[bzPayloadLength:]))
	if n < 8 || off < start || off+n > len(bz) {
		return nil, 0, fmt.Errorf("payload [%d, +%d) is outside the %d-byte file", off, n, len(bz))
	}
	p := bz[off : off+n]
	return p[:len(p)-4], le.Uint32(p[len(p)-4:]), nil
}

// extractVmlinux writes the uncompressed ELF kernel inside the bzImage at
// src to dst. QEMU's microvm boots it through its PVH entry point, skipping
// the kernel's own decompression (slow under TCG). It returns the payload's
// format; a format it cannot decompress is an error, and the caller keeps
// the compressed kernel.
func extractVmlinux(ctx context.Context, src, dst string) (string, error) {
	bz, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("extracting vmlinux: %w", err)
	}
	payload, size, err := bzPayload(bz)
	if err != nil {
		return "", fmt.Errorf("extracting vmlinux from %s: %w", src, err)
	}
	var dec *decompressor
	for i := range decompressors {
		if bytes.HasPrefix(payload, decompressors[i].magic) {
			dec = &decompressors[i]
		}
	}
	if dec == nil {
		return "", fmt.Errorf("extracting vmlinux from %s: unsupported compression (magic % x)", src, payload[:4])
	}
	in := filepath.Join(filepath.Dir(dst), ".payload."+dec.format)
	if err := os.WriteFile(in, payload, 0o600); err != nil {
		return "", fmt.Errorf("extracting vmlinux: %w", err)
	}
	defer os.Remove(in)
	argv := dec.argv(in, dst)
	if _, err := hostcmd.Run(ctx, argv[0], argv[1:]...); err != nil {
		return "", fmt.Errorf("extracting vmlinux: %w", err)
	}
	f, err := os.Open(dst)
	if err != nil {
		return "", fmt.Errorf("extracting vmlinux: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("extracting vmlinux: %w", err)
	}
	magic := make([]byte, 4)
	if _, err := f.ReadAt(magic, 0); err != nil || string(magic) != "\x7fELF" {
		return "", fmt.Errorf("extracting vmlinux from %s: the payload is not an ELF kernel", src)
	}
	if st.Size() != int64(size) {
		return "", fmt.Errorf("extracting vmlinux from %s: got %d bytes, the kernel says %d", src, st.Size(), size)
	}
	return dec.format, nil
}
