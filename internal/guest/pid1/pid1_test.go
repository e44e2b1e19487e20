package pid1

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/testenv"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"empty", "", map[string]string{}},
		{"root", "console=ttyS0 agentiso.root=/dev/vda\n", map[string]string{"console": "ttyS0", RootParam: "/dev/vda"}},
		{"flag without value", "quiet  pci=off", map[string]string{"quiet": "", "pci": "off"}},
		{"value with '='", "a=b=c", map[string]string{"a": "b=c"}},
		{"quoted value", `x="hello world" y=1`, map[string]string{"x": "hello world", "y": "1"}},
		{"quoted whole parameter", `"x=a b"`, map[string]string{"x": "a b"}},
		{"later wins", "agentiso.root=/dev/vda agentiso.root=/dev/vdb", map[string]string{RootParam: "/dev/vdb"}},
		{"init arguments ignored", "a=1 -- agentiso.root=/dev/vdb", map[string]string{"a": "1"}},
		{"tabs and newlines", "a=1\tb=2\n", map[string]string{"a": "1", "b": "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseCmdline(tt.in)); diff != "" {
				t.Errorf("parseCmdline(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestReadModuleList(t *testing.T) {
	in := "# written by the image builder\n/lib/modules/a.ko\n\n  /lib/modules/b.ko  \n"
	got, err := readModuleList(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/lib/modules/a.ko", "/lib/modules/b.ko"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := readModuleList(strings.NewReader("lib/relative.ko\n")); err == nil {
		t.Error("a relative module path was accepted")
	}
}

// superblock makes a raw ext4 superblock.
func superblock(blocksLo, blocksHi, logBlockSize, incompat uint32, magic uint16) []byte {
	sb := make([]byte, ext4SuperblockSize)
	le := binary.LittleEndian
	le.PutUint32(sb[0x04:], blocksLo)
	le.PutUint32(sb[0x18:], logBlockSize)
	le.PutUint16(sb[0x38:], magic)
	le.PutUint32(sb[0x60:], incompat)
	le.PutUint32(sb[0x150:], blocksHi)
	return sb
}

func TestParseExt4Superblock(t *testing.T) {
	tests := []struct {
		name       string
		sb         []byte
		blocks, bs uint64
		wantErr    bool
	}{
		{"8 GiB, 4 KiB blocks", superblock(2097152, 0, 2, 0, ext4Magic), 2097152, 4096, false},
		{"64bit uses the high word", superblock(5, 1, 2, ext4Incompat64Bit, ext4Magic), 1<<32 | 5, 4096, false},
		{"high word ignored without 64bit", superblock(5, 1, 2, 0, ext4Magic), 5, 4096, false},
		{"1 KiB blocks", superblock(1000, 0, 0, 0, ext4Magic), 1000, 1024, false},
		{"not ext4", superblock(1000, 0, 2, 0, 0x1234), 0, 0, true},
		{"absurd block size", superblock(1000, 0, 30, 0, ext4Magic), 0, 0, true},
		{"short", make([]byte, 100), 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blocks, bs, err := parseExt4Superblock(tt.sb)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if blocks != tt.blocks || bs != tt.bs {
				t.Errorf("got %d blocks of %d, want %d of %d", blocks, bs, tt.blocks, tt.bs)
			}
		})
	}
}

func TestRestartDelay(t *testing.T) {
	d := restartDelay(0, 0)
	if d != minRestartDelay {
		t.Fatalf("first delay %v, want %v", d, minRestartDelay)
	}
	var seen []time.Duration
	for range 10 {
		d = restartDelay(d, time.Second)
		seen = append(seen, d)
	}
	if seen[0] != 2*minRestartDelay {
		t.Errorf("a quick second failure waits %v, want %v", seen[0], 2*minRestartDelay)
	}
	if last := seen[len(seen)-1]; last != maxRestartDelay {
		t.Errorf("repeated failures settle at %v, want %v", last, maxRestartDelay)
	}
	if got := restartDelay(maxRestartDelay, stableRun); got != minRestartDelay {
		t.Errorf("after a long run the delay is %v, want %v", got, minRestartDelay)
	}
}

func TestDescribeExit(t *testing.T) {
	// Wait statuses as the kernel encodes them.
	if got := describeExit(unix.WaitStatus(3 << 8)); got != "exit 3" {
		t.Errorf("exit 3: got %q", got)
	}
	if got := describeExit(unix.WaitStatus(unix.SIGKILL)); got != "killed by SIGKILL" {
		t.Errorf("SIGKILL: got %q", got)
	}
}

func TestConsoleLoggerPrefixesEveryRecord(t *testing.T) {
	var buf bytes.Buffer
	log := NewConsoleLogger(&buf)
	log.Info("init started")
	log.Error("fatal", "err", "boom")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), buf.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, consolePrefix+"t=") {
			t.Errorf("line %q lacks the prefix and boot time", l)
		}
	}
	if !strings.Contains(lines[1], `err=boom`) {
		t.Errorf("line %q lacks the attribute", lines[1])
	}
}

func TestDeleteContentsStaysOnItsDevice(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "initramfs")
	for _, f := range []string{"init", "etc/agentiso/modules", "lib/modules/x/kernel/a.ko"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	victim := filepath.Join(parent, "victim")
	if err := os.WriteFile(victim, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		t.Fatal(err)
	}
	// Another device number stands for every entry being on a different
	// filesystem: nothing may go.
	if err := deleteContents(dir, uint64(st.Dev)+1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/agentiso/modules")); err != nil {
		t.Fatalf("a file on another device was removed: %v", err)
	}
	if err := deleteContents(dir, uint64(st.Dev)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); err == nil {
		t.Errorf("%s survived", dir)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("a symlink was followed: %v", err)
	}
}

// TestDeleteContentsSkipsMounts mounts a tmpfs inside the tree, as /newroot
// and the moved /proc are mounted inside the initramfs, and checks that
// nothing below it is touched.
func TestDeleteContentsSkipsMounts(t *testing.T) {
	testenv.Require(t, "root")
	dir := t.TempDir()
	mnt := filepath.Join(dir, "newroot")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	keep := filepath.Join(mnt, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gone"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if err := deleteContents(dir, uint64(st.Dev)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file on the mounted filesystem was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); err == nil {
		t.Errorf("a file on the tree's own filesystem survived")
	}
}

// TestH9_PID1LeavesOOMScoreAlone: the guest must not make itself unkillable
// by the OOM killer (finding H-9); memory limits belong to the host.
func TestH9_PID1LeavesOOMScoreAlone(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("oom_score")) {
			t.Errorf("%s touches the OOM score", f)
		}
	}
}
