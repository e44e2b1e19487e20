package image

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/guest/pid1"
)

// newcEntry is one parsed newc record.
type newcEntry struct {
	Name                 string
	Mode                 uint32
	RdevMajor, RdevMinor uint32
	Data                 string
}

// parseNewc parses a newc archive strictly: magic, hex fields, 4-byte
// alignment of names and data, the trailer at the end.
func parseNewc(t *testing.T, b []byte) []newcEntry {
	t.Helper()
	var out []newcEntry
	off := 0
	align := func() { off = (off + 3) &^ 3 }
	for {
		if off+110 > len(b) {
			t.Fatalf("truncated header at %d", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatalf("bad field %d at %d: %v", i, off, err)
			}
			return uint32(v)
		}
		mode, size, rmaj, rmin, namesize := field(1), field(6), field(9), field(10), field(11)
		off += 110
		name := string(b[off : off+int(namesize)-1])
		if b[off+int(namesize)-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		off += int(namesize)
		align()
		data := string(b[off : off+int(size)])
		off += int(size)
		align()
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, newcEntry{Name: name, Mode: mode, RdevMajor: rmaj, RdevMinor: rmin, Data: data})
	}
}

func TestWriteInitramfs(t *testing.T) {
	dir := t.TempDir()
	guest := filepath.Join(dir, "agentiso-guest")
	must(t, os.WriteFile(guest, []byte("\x7fELF pretend guest binary, odd length."), 0o755))
	var mods []initramfsModule
	for _, m := range []string{"virtio_ring", "virtio", "virtio-rng"} {
		src := filepath.Join(dir, m+".ko")
		must(t, os.WriteFile(src, []byte("module "+m), 0o644))
		mods = append(mods, initramfsModule{Src: src, Dst: "/lib/modules/6.1.0-test/kernel/drivers/" + m + ".ko"})
	}

	var buf bytes.Buffer
	must(t, writeInitramfs(&buf, guest, mods))
	entries := parseNewc(t, buf.Bytes())

	byName := map[string]newcEntry{}
	seen := map[string]bool{}
	for _, e := range entries {
		if seen[e.Name] {
			t.Errorf("%s appears twice", e.Name)
		}
		seen[e.Name] = true
		byName[e.Name] = e
		// The kernel makes each entry in its parent: parents come first.
		if parent := filepath.Dir(e.Name); parent != "." && !seen[parent] {
			t.Errorf("%s comes before its directory %s", e.Name, parent)
		}
		if strings.HasPrefix(e.Name, "/") {
			t.Errorf("%s is absolute", e.Name)
		}
	}

	console, ok := byName["dev/console"]
	if !ok {
		t.Fatal("no dev/console: the kernel would start init without a console")
	}
	if console.Mode != cpioTypeChar|0o600 || console.RdevMajor != 5 || console.RdevMinor != 1 {
		t.Errorf("dev/console: mode %o rdev %d:%d, want char 0600 5:1", console.Mode, console.RdevMajor, console.RdevMinor)
	}
	init := byName["init"]
	if init.Mode != cpioTypeReg|0o755 || init.Data != "\x7fELF pretend guest binary, odd length." {
		t.Errorf("init: mode %o data %q", init.Mode, init.Data)
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "newroot", "etc/agentiso"} {
		if e, ok := byName[d]; !ok || e.Mode != cpioTypeDir|0o755 {
			t.Errorf("directory %s: %+v", d, e)
		}
	}
	list := byName[strings.TrimPrefix(pid1.ModulesFile, "/")]
	wantList := "/lib/modules/6.1.0-test/kernel/drivers/virtio_ring.ko\n" +
		"/lib/modules/6.1.0-test/kernel/drivers/virtio.ko\n" +
		"/lib/modules/6.1.0-test/kernel/drivers/virtio-rng.ko\n"
	if diff := cmp.Diff(wantList, list.Data); diff != "" {
		t.Errorf("module list (-want +got):\n%s", diff)
	}
	for _, m := range mods {
		e := byName[strings.TrimPrefix(m.Dst, "/")]
		if want := "module " + strings.TrimSuffix(filepath.Base(m.Src), ".ko"); e.Data != want {
			t.Errorf("%s holds %q, want %q", m.Dst, e.Data, want)
		}
	}

	// The same inputs give the same bytes: the image hash can rely on it.
	var again bytes.Buffer
	must(t, writeInitramfs(&again, guest, mods))
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two writes of the same initramfs differ")
	}

	// An independent reader agrees on names and contents.
	r := cpio.NewReader(bytes.NewReader(buf.Bytes()))
	n := 0
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("cavaliergopher/cpio cannot read it: %v", err)
		}
		data, err := io.ReadAll(r)
		must(t, err)
		if e := byName[h.Name]; e.Data != string(data) {
			t.Errorf("%s: readers disagree", h.Name)
		}
		n++
	}
	if n != len(entries) {
		t.Errorf("cavaliergopher/cpio read %d entries, want %d", n, len(entries))
	}
}

func TestWriteInitramfsRefusesMissingFiles(t *testing.T) {
	var buf bytes.Buffer
	if err := writeInitramfs(&buf, filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("a missing guest binary was accepted")
	}
	if err := writeInitramfs(&buf, t.TempDir(), nil); err == nil {
		t.Error("a directory as the guest binary was accepted")
	}
}
