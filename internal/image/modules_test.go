package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeModule writes a minimal ELF relocatable file whose .modinfo section
// holds the given key=value strings, as a kernel module's does.
func fakeModule(t *testing.T, path string, modinfo ...string) {
	t.Helper()
	info := []byte(strings.Join(modinfo, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	infoOff := uint64(ehsize)
	strOff := infoOff + uint64(len(info))
	shOff := (strOff + uint64(len(shstrtab)) + 7) &^ 7

	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: ehsize, Shentsize: shentsize, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	must(t, binary.Write(&b, binary.LittleEndian, hdr))
	b.Write(info)
	b.Write(shstrtab)
	b.Write(make([]byte, shOff-uint64(b.Len())))
	for _, sh := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: infoOff, Size: uint64(len(info)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstrtab)), Addralign: 1},
	} {
		must(t, binary.Write(&b, binary.LittleEndian, sh))
	}
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, b.Bytes(), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadModinfo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "virtio_net.ko")
	fakeModule(t, p, "alias=virtio:d00000001v*", "depends=virtio_ring,virtio,net_failover", "name=virtio_net", "vermagic=6.1.0")
	info, err := readModinfo(p)
	if err != nil {
		t.Fatal(err)
	}
	if info["depends"] != "virtio_ring,virtio,net_failover" || info["name"] != "virtio_net" {
		t.Errorf("got %v", info)
	}
	if _, err := readModinfo(filepath.Join(t.TempDir(), "missing.ko")); err == nil {
		t.Error("a missing module read without error")
	}
	notELF := filepath.Join(t.TempDir(), "x.ko")
	must(t, os.WriteFile(notELF, []byte("not an ELF file at all"), 0o644))
	if _, err := readModinfo(notELF); err == nil {
		t.Error("a non-ELF file read without error")
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/char/hw_random/virtio-rng.ko": "virtio_rng",
		"virtio_blk.ko":          "virtio_blk",
		"kernel/fs/ext4/ext4.ko": "ext4",
		"failover.ko.xz":         "failover",
		"virtio-rng":             "virtio_rng",
	} {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResolveModules(t *testing.T) {
	graph := map[string][]string{
		"virtio_ring":    nil,
		"virtio":         {"virtio_ring"},
		"virtio_mmio":    {"virtio", "virtio_ring"},
		"virtio_blk":     {"virtio", "virtio_ring"},
		"failover":       nil,
		"net_failover":   {"failover"},
		"virtio_net":     {"virtio_ring", "virtio", "net_failover"},
		"uses_builtin":   {"ext4"},
		"ext4":           {"jbd2"}, // built in: jbd2 must not be asked for
		"cycle_a":        {"cycle_b"},
		"cycle_b":        {"cycle_a"},
		"needs_missing":  {"nowhere"},
		"self_dependent": {"self_dependent"},
	}
	deps := func(name string) ([]string, error) {
		d, ok := graph[name]
		if !ok {
			return nil, errors.New("kernel module " + name + ": not in the kernel package")
		}
		return d, nil
	}
	builtin := func(name string) bool { return name == "ext4" }
	tests := []struct {
		name    string
		want    []string
		order   []string
		wantErr string
	}{
		{"dependencies first", []string{"virtio_net"}, []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"}, ""},
		{"each once, request order kept", []string{"virtio_blk", "virtio_mmio", "virtio"}, []string{"virtio_ring", "virtio", "virtio_blk", "virtio_mmio"}, ""},
		{"built-in left out", []string{"uses_builtin", "ext4"}, []string{"uses_builtin"}, ""},
		{"cycle", []string{"cycle_a"}, nil, "cycle_a -> cycle_b -> cycle_a"},
		{"self cycle", []string{"self_dependent"}, nil, "cycle"},
		{"missing dependency", []string{"needs_missing"}, nil, "nowhere"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveModules(tt.want, builtin, deps)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.order, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestModuleTreeResolvesGuestModules lays out a kernel's module tree the way
// Debian's package does (no modules.dep, a module file named with '-') and
// resolves the guest's module list from it.
func TestModuleTreeResolvesGuestModules(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lib/modules/6.1.0-test")
	mods := map[string]string{
		"kernel/drivers/virtio/virtio_ring.ko":           "",
		"kernel/drivers/virtio/virtio.ko":                "virtio_ring",
		"kernel/drivers/virtio/virtio_mmio.ko":           "virtio,virtio_ring",
		"kernel/drivers/char/virtio_console.ko":          "virtio,virtio_ring",
		"kernel/drivers/block/virtio_blk.ko":             "virtio,virtio_ring",
		"kernel/net/core/failover.ko":                    "",
		"kernel/drivers/net/net_failover.ko":             "failover",
		"kernel/drivers/net/virtio_net.ko":               "virtio_ring,virtio,net_failover",
		"kernel/drivers/char/hw_random/virtio-rng.ko":    "virtio,virtio_ring",
		"kernel/drivers/gpu/drm/virtio/virtio-gpu.ko":    "virtio,drm", // not wanted: never read
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko": "",
	}
	for rel, deps := range mods {
		fakeModule(t, filepath.Join(dir, rel), "depends="+deps, "name="+moduleName(rel))
	}
	must(t, os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\nkernel/fs/jbd2/jbd2.ko\n"), 0o644))

	tree, err := openModuleTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !tree.builtin["ext4"] {
		t.Error("modules.builtin not read")
	}
	got, err := resolveModules(guestModules, func(n string) bool { return tree.builtin[n] }, tree.depends)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"virtio_ring", "virtio", "virtio_mmio", "virtio_console", "virtio_blk", "failover", "net_failover", "virtio_net", "virtio_rng"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if tree.files["virtio_rng"] != "kernel/drivers/char/hw_random/virtio-rng.ko" {
		t.Errorf("virtio_rng found at %q", tree.files["virtio_rng"])
	}

	// A module whose .modinfo disagrees with its file name is refused.
	fakeModule(t, filepath.Join(dir, "kernel/drivers/virtio/virtio_ring.ko"), "depends=", "name=something_else")
	if _, err := tree.depends("virtio_ring"); err == nil {
		t.Error("a module named differently inside was accepted")
	}
}
