package vm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"
)

// The log files in a VM's log directory.
const (
	consoleLogName = "console.log"
	qemuLogName    = "qemu.log"
	// rotatedSuffix names the previous generation of a rotated log.
	rotatedSuffix = ".1"
)

// maxTailRead bounds how much of a log file ConsoleTail reads.
const maxTailRead = 256 << 10

// consoleLog is the guest's serial console written to a size-bounded file:
// when the file would pass max bytes it becomes console.log.1 (replacing the
// previous one) and a new console.log starts. At most about 2*max bytes are
// kept.
type consoleLog struct {
	path string
	max  int64

	mu   sync.Mutex
	f    *os.File
	size int64
}

func openConsoleLog(path string, max int64) (*consoleLog, error) {
	l := &consoleLog{path: path, max: max}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *consoleLog) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening console log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening console log: %w", err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first if p would take the file past max.
func (l *consoleLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, fs.ErrClosed
	}
	if l.size > 0 && l.size+int64(len(p)) > l.max {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

func (l *consoleLog) rotate() error {
	l.f.Close()
	l.f = nil
	if err := os.Rename(l.path, l.path+rotatedSuffix); err != nil {
		return fmt.Errorf("rotating console log: %w", err)
	}
	return l.open()
}

func (l *consoleLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ConsoleTail returns the last n lines of the console log in logDir, made
// safe to show: carriage returns and control characters other than newline
// and tab are dropped, invalid UTF-8 is replaced. It reads the rotated
// generation too when the current one is short, and works after the VM has
// stopped. A VM that never wrote a console log gives "".
func ConsoleTail(logDir string, n int) (string, error) {
	return tailLog(filepath.Join(logDir, consoleLogName), n)
}

// QEMULogTail returns the last n lines of QEMU's own messages (qemu.log) in
// logDir, sanitised like ConsoleTail.
func QEMULogTail(logDir string, n int) (string, error) {
	return tailLog(filepath.Join(logDir, qemuLogName), n)
}

// tailLog returns the last n lines of the log at path and its rotated
// generation, sanitised.
func tailLog(path string, n int) (string, error) {
	if n <= 0 {
		return "", nil
	}
	cur, err := readTail(path, maxTailRead)
	if err != nil {
		return "", err
	}
	if bytes.Count(cur, []byte("\n")) < n {
		prev, err := readTail(path+rotatedSuffix, maxTailRead)
		if err != nil {
			return "", err
		}
		cur = append(prev, cur...)
	}
	lines := strings.Split(strings.TrimRight(sanitize(cur), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}

// readTail reads at most limit bytes from the end of the file at path; a
// missing file is empty.
func readTail(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading log: %w", err)
	}
	off := max(fi.Size()-limit, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return nil, fmt.Errorf("reading log: %w", err)
	}
	if off > 0 {
		// Drop the partial first line.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b, nil
}

// sanitize makes guest output safe to embed in an error or a log line: no
// terminal escapes or other control characters survive.
func sanitize(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		if b[0] == 0x1b && len(b) > 1 && b[1] == '[' {
			// A CSI escape sequence (colours, cursor moves): parameters
			// up to a final byte in 0x40-0x7e.
			i := 2
			for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
				i++
			}
			b = b[min(i+1, len(b)):]
			continue
		}
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == '\n' || r == '\t':
			sb.WriteRune(r)
		case r == utf8.RuneError && size == 1:
			sb.WriteRune(utf8.RuneError)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			// control characters, including ESC and CR: dropped
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}
