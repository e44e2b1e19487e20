package pid1

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ext4ResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64): grow a mounted
// ext4 to the given number of blocks. x/sys/unix does not define it.
const ext4ResizeFS = 0x40086610

// parseCmdline splits a kernel command line into parameters as the kernel
// does: spaces separate them, double quotes group, and the first '=' splits
// name from value. A parameter without '=' maps to "". Everything after a
// lone "--" belongs to init's argv and is ignored; a later duplicate wins.
func parseCmdline(s string) map[string]string {
	params := make(map[string]string)
	var words []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case (r == ' ' || r == '\t' || r == '\n') && !inQuote:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	for _, w := range words {
		if w == "--" {
			break
		}
		name, value, _ := strings.Cut(w, "=")
		params[name] = value
	}
	return params
}

// mountRoot waits for the root disk, mounts it (ext4) at dir, and grows the
// filesystem to fill the disk when the disk is larger: a workspace's overlay
// may have a bigger virtual size than the base image.
func mountRoot(log *slog.Logger, dev, dir string) error {
	t := time.Now()
	if err := waitForDevice(dev, rootDeviceTimeout); err != nil {
		return err
	}
	waited := time.Since(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", dir, err)
	}
	if err := unix.Mount(dev, dir, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mounting root %s on %s: %w", dev, dir, err)
	}
	log.Info("mounted root", "dev", dev, "waited", waited.Round(time.Microsecond), "took", time.Since(t).Round(time.Microsecond))
	if err := growFS(log, dev, dir); err != nil {
		// The disk still works at its old size; an agent would rather have
		// a workspace than none.
		log.Error("growing the root filesystem", "err", err)
	}
	return nil
}

// waitForDevice waits until the device node exists (devtmpfs makes it when
// the driver has probed the disk). There is no udev to tell us, so it polls.
func waitForDevice(dev string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := os.Stat(dev)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("waiting for root device %s: %w", dev, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for root device %s: not there after %s (block devices: %s)", dev, timeout, listBlockDevices())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func listBlockDevices() string {
	entries, err := os.ReadDir("/sys/class/block")
	if err != nil {
		return err.Error()
	}
	if len(entries) == 0 {
		return "none"
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// growFS grows the ext4 mounted at dir to the size of dev, online.
func growFS(log *slog.Logger, dev, dir string) error {
	f, err := os.Open(dev)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	devSize, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return fmt.Errorf("reading the size of %s: %w", dev, err)
	}
	sb := make([]byte, ext4SuperblockSize)
	if _, err := f.ReadAt(sb, ext4SuperblockOffset); err != nil {
		return fmt.Errorf("reading the superblock of %s: %w", dev, err)
	}
	blocks, blockSize, err := parseExt4Superblock(sb)
	if err != nil {
		return fmt.Errorf("reading the superblock of %s: %w", dev, err)
	}
	want := devSize / blockSize
	if want <= blocks {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer d.Close()
	t := time.Now()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4ResizeFS, uintptr(unsafe.Pointer(&want))); errno != 0 {
		return fmt.Errorf("resizing %s from %d to %d blocks: %w", dir, blocks, want, errno)
	}
	log.Info("grew root filesystem", "from", blocks*blockSize, "to", want*blockSize, "took", time.Since(t).Round(time.Microsecond))
	return nil
}

// The ext4 superblock: where it is and the fields growFS needs.
const (
	ext4SuperblockOffset = 1024
	ext4SuperblockSize   = 1024
	ext4Magic            = 0xEF53
	ext4Incompat64Bit    = 0x80
)

// parseExt4Superblock returns the filesystem's size in blocks and its block
// size from a raw ext4 superblock.
func parseExt4Superblock(sb []byte) (blocks, blockSize uint64, err error) {
	if len(sb) < ext4SuperblockSize {
		return 0, 0, errors.New("short ext4 superblock")
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != ext4Magic {
		return 0, 0, errors.New("not an ext4 filesystem")
	}
	logSize := le.Uint32(sb[0x18:])
	if logSize > 6 { // 64 KiB is the largest ext4 block
		return 0, 0, fmt.Errorf("implausible ext4 block size 2^%d KiB", logSize)
	}
	blocks = uint64(le.Uint32(sb[0x04:]))
	if le.Uint32(sb[0x60:])&ext4Incompat64Bit != 0 {
		blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	return blocks, 1024 << logSize, nil
}
