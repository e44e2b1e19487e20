package pid1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// mount is one filesystem PID 1 mounts before the root switch.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// earlyMounts are mounted in order in the initramfs and moved, with
// everything below them, onto the root disk by switchRoot.
var earlyMounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	// gid 5 is Debian's tty group.
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// movedMounts are the top-level mounts switchRoot carries onto the new root.
var movedMounts = []string{"/dev", "/proc", "/sys", "/run", "/tmp"}

// devLinks are the /dev symlinks that udev would make and programs expect
// (bash's process substitution uses /dev/fd).
var devLinks = map[string]string{
	"/dev/fd":     "/proc/self/fd",
	"/dev/stdin":  "/proc/self/fd/0",
	"/dev/stdout": "/proc/self/fd/1",
	"/dev/stderr": "/proc/self/fd/2",
}

// mountEarly mounts the pseudo-filesystems and the tmpfs directories.
func mountEarly() error {
	for _, m := range earlyMounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("making mount point %s: %w", m.target, err)
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.target, err)
		}
	}
	for link, target := range devLinks {
		if err := os.Symlink(target, link); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("linking %s: %w", link, err)
		}
	}
	return nil
}

// switchRoot makes newRoot the root, as busybox's switch_root does: it moves
// the early mounts under newRoot, frees the initramfs by deleting its
// contents (on its own device only), moves newRoot onto / and chroots.
func switchRoot(newRoot string) error {
	var rootSt, newSt unix.Stat_t
	if err := unix.Lstat("/", &rootSt); err != nil {
		return fmt.Errorf("switching root: %w", err)
	}
	if err := unix.Lstat(newRoot, &newSt); err != nil {
		return fmt.Errorf("switching root: %w", err)
	}
	if rootSt.Dev == newSt.Dev {
		return fmt.Errorf("switching root: %s is not a mount point", newRoot)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs("/", &fs); err != nil {
		return fmt.Errorf("switching root: %w", err)
	}
	if fs.Type != unix.RAMFS_MAGIC && fs.Type != unix.TMPFS_MAGIC {
		// Never delete the contents of a real disk.
		return fmt.Errorf("switching root: / is not an initramfs (fs type %#x)", fs.Type)
	}

	for _, m := range movedMounts {
		target := filepath.Join(newRoot, m)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("making mount point %s: %w", target, err)
		}
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s to %s: %w", m, target, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switching root: %w", err)
	}
	if err := deleteContents("/", uint64(rootSt.Dev)); err != nil {
		return fmt.Errorf("freeing the initramfs: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switching root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switching root: %w", err)
	}
	return nil
}

// deleteContents removes everything below dir that lives on device dev, and
// dir itself unless it is "/". It never crosses into another filesystem, so
// mount points (and what is below them) survive.
func deleteContents(dir string, dev uint64) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if uint64(st.Dev) != dev {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := deleteContents(p, dev); err != nil {
				return err
			}
			continue
		}
		if err := unix.Unlink(p); err != nil {
			return fmt.Errorf("removing %s: %w", p, err)
		}
	}
	if dir == "/" {
		return nil
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOTEMPTY) {
		// ENOTEMPTY: a mount point lives below; keep the directory.
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

// loopbackUp brings up lo; the kernel then gives it 127.0.0.1 and ::1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	return nil
}
