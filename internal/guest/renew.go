package guest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/protocol"
)

// machineIDMode is the mode of /etc/machine-id, as systemd leaves it.
const machineIDMode = 0o444

// renew gives this VM a fresh identity as an instance after it was resumed
// from a memory snapshot or booted from a fork's disk: the RNG gets the
// host's fresh entropy and reseeds, the clock steps to the host's, and the
// machine-id is replaced. The RNG comes first: nothing after it may draw
// randomness from the state the snapshot shared.
func (a *Agent) renew(m *protocol.Renew) error {
	if err := a.opts.AddEntropy(m.Entropy); err != nil {
		return fmt.Errorf("reseeding the RNG: %w", err)
	}
	if err := a.opts.SetClock(time.Unix(0, m.RealtimeNs)); err != nil {
		return fmt.Errorf("setting the clock: %w", err)
	}
	if m.MachineID != "" {
		p := filepath.Join(a.opts.EtcDir, "machine-id")
		err := writeAtomic(p, machineIDMode, func(f *os.File) error {
			if _, err := f.WriteString(m.MachineID + "\n"); err != nil {
				return fsError("writing", p, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	a.log.Info("instance identity renewed", "entropy_bytes", len(m.Entropy), "machine_id", m.MachineID != "")
	return nil
}

// addEntropy credits b to the kernel's entropy pool (RNDADDENTROPY, so the
// bytes count as the full entropy they carry: they come from the host's
// RNG) and makes the kernel reseed its CRNG from the pool at once
// (RNDRESEEDCRNG), so /dev/urandom and getrandom stop following the state
// every copy of a snapshot shares.
func addEntropy(b []byte) error {
	f, err := os.OpenFile("/dev/random", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+len(b))
	binary.NativeEndian.PutUint32(info[0:4], uint32(8*len(b)))
	binary.NativeEndian.PutUint32(info[4:8], uint32(len(b)))
	copy(info[8:], b)
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	cerr := rc.Control(func(fd uintptr) {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0]))); e != 0 {
			ioctlErr = fmt.Errorf("RNDADDENTROPY: %w", e)
			return
		}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, unix.RNDRESEEDCRNG, 0); e != 0 {
			ioctlErr = fmt.Errorf("RNDRESEEDCRNG: %w", e)
		}
	})
	if cerr != nil {
		return cerr
	}
	return ioctlErr
}

// setClock steps the wall clock to t.
func setClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
}
