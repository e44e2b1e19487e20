package image

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agentiso/agentiso/internal/guest/pid1"
)

// initramfsDirs are made in the initramfs: mount points PID 1 needs before
// it can make any (the root is read-write, but they cost nothing here).
var initramfsDirs = []string{"dev", "proc", "sys", "run", "tmp", "newroot", "etc"}

// initramfsModule is a kernel module to put into the initramfs: Src on the
// host, Dst its absolute path in the guest.
type initramfsModule struct {
	Src, Dst string
}

// writeInitramfs writes the initramfs to w: the guest binary as /init,
// /dev/console (the kernel opens it for init's stdio), the modules, and the
// module list PID 1 loads in order. The archive is a newc cpio, uncompressed
// (the kernel copies it faster than it would decompress it), with fixed
// times and owners so that the same inputs give the same bytes.
func writeInitramfs(w io.Writer, guestBinary string, modules []initramfsModule) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := newCpioWriter(bw)

	dirs := map[string]bool{}
	for _, d := range initramfsDirs {
		dirs[d] = true
	}
	dirs[strings.TrimPrefix(path.Dir(pid1.ModulesFile), "/")] = true
	for _, m := range modules {
		dirs[strings.TrimPrefix(path.Dir(m.Dst), "/")] = true
	}
	for _, d := range withParents(dirs) {
		if err := cw.dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := cw.charDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := cw.fileFrom("init", 0o755, guestBinary); err != nil {
		return err
	}
	var list strings.Builder
	for _, m := range modules {
		if err := cw.fileFrom(strings.TrimPrefix(m.Dst, "/"), 0o644, m.Src); err != nil {
			return err
		}
		list.WriteString(m.Dst + "\n")
	}
	if err := cw.file(strings.TrimPrefix(pid1.ModulesFile, "/"), 0o644, []byte(list.String())); err != nil {
		return err
	}
	if err := cw.close(); err != nil {
		return err
	}
	return bw.Flush()
}

// withParents returns the directories and all their parents, sorted so that
// a parent comes before its children.
func withParents(dirs map[string]bool) []string {
	all := map[string]bool{}
	for d := range dirs {
		for ; d != "." && d != "/" && d != ""; d = path.Dir(d) {
			all[d] = true
		}
	}
	out := make([]string, 0, len(all))
	for d := range all {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// cpioWriter writes the newc ("070701") cpio format the kernel unpacks into
// its initramfs. github.com/cavaliergopher/cpio cannot be used: its writer
// drops the device numbers, so /dev/console would come out as 0:0.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

func newCpioWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: w} }

const (
	cpioTypeDir  = 0o040000
	cpioTypeReg  = 0o100000
	cpioTypeChar = 0o020000
	cpioTrailer  = "TRAILER!!!"
)

func (c *cpioWriter) header(name string, mode uint32, nlink int, size int64, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	if size > 0xffffffff {
		c.err = fmt.Errorf("writing initramfs: %s is larger than 4 GiB", name)
		return
	}
	c.ino++
	ino := c.ino
	if name == cpioTrailer {
		ino = 0
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check.
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad(len(hdr) + len(name) + 1)
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	if _, err := c.w.Write(b); err != nil {
		c.err = fmt.Errorf("writing initramfs: %w", err)
	}
}

// pad writes the zeros that align the stream after n bytes to 4 bytes.
func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) dir(name string, perm uint32) error {
	c.header(name, cpioTypeDir|perm, 2, 0, 0, 0)
	return c.err
}

func (c *cpioWriter) charDev(name string, perm, major, minor uint32) error {
	c.header(name, cpioTypeChar|perm, 1, 0, major, minor)
	return c.err
}

func (c *cpioWriter) file(name string, perm uint32, data []byte) error {
	c.header(name, cpioTypeReg|perm, 1, int64(len(data)), 0, 0)
	c.write(data)
	c.pad(len(data))
	return c.err
}

// fileFrom adds the regular file src as name.
func (c *cpioWriter) fileFrom(name string, perm uint32, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("writing initramfs: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("writing initramfs: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("writing initramfs: %s is not a regular file", filepath.Clean(src))
	}
	c.header(name, cpioTypeReg|perm, 1, st.Size(), 0, 0)
	if c.err != nil {
		return c.err
	}
	n, err := io.Copy(c.w, f)
	if err != nil {
		return fmt.Errorf("writing initramfs: copying %s: %w", src, err)
	}
	if n != st.Size() {
		return fmt.Errorf("writing initramfs: %s changed size while being copied", src)
	}
	c.pad(int(n % 4))
	return c.err
}

func (c *cpioWriter) close() error {
	c.header(cpioTrailer, 0, 1, 0, 0, 0)
	return c.err
}
