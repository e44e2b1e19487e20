package image

import (
	"bufio"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// removeStale removes what crashed builds left in dir: entries whose names
// start with prefix. Callers hold the build lock, so none is in use.
func removeStale(log *slog.Logger, dir, prefix string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			log.Info("removing a stale build directory", "path", filepath.Join(dir, e.Name()))
			removeTree(log, filepath.Join(dir, e.Name()))
		}
	}
}

// removeTree removes a build tree. debootstrap mounts /proc and /sys inside
// its target and a killed run leaves them there: those are detached first,
// so the removal never walks into a live pseudo-filesystem.
func removeTree(log *slog.Logger, dir string) {
	for _, mp := range mountsUnder(dir) {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			log.Warn("unmounting a leftover mount", "path", mp, "err", err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		log.Warn("removing a build directory", "path", dir, "err", err)
	}
}

// mountsUnder returns the mount points strictly below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	prefix := filepath.Clean(dir) + "/"
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if mp := unescapeMountPath(fields[4]); strings.HasPrefix(mp, prefix) {
			out = append(out, mp)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
