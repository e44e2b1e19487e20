package cgroup

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// DefaultMountInfo is the mount table Detect reads by default.
const DefaultMountInfo = "/proc/self/mountinfo"

// Layout is where the hierarchies agentiso uses are mounted.
type Layout struct {
	Version Version
	// Mounts maps each of Controllers to the mount point of its hierarchy:
	// the same directory for all of them on v2.
	Mounts map[string]string
	// Roots maps each of Controllers to the group its mount shows, as
	// /proc/<pid>/cgroup names groups ("/" unless a subtree is mounted).
	Roots map[string]string
}

func (l Layout) String() string {
	if l.Version == V2 {
		return "cgroup v2 at " + l.Mounts[Memory]
	}
	parts := make([]string, 0, len(Controllers))
	for _, c := range Controllers {
		parts = append(parts, c+" at "+l.Mounts[c])
	}
	return "cgroup v1 (" + strings.Join(parts, ", ") + ")"
}

// Writable reports whether every mount can take new groups, without making
// one (for read-only checks).
func (l Layout) Writable() error {
	for _, m := range l.distinctMounts() {
		if err := unix.Access(m, unix.W_OK); err != nil {
			return fmt.Errorf("%s is not writable: %w", m, err)
		}
	}
	return nil
}

func (l Layout) distinctMounts() []string {
	var out []string
	for _, c := range Controllers {
		if m := l.Mounts[c]; !contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// mount is one cgroup filesystem from the mount table.
type mount struct {
	point, root string
	v2          bool
	// controllers are a v1 hierarchy's controllers (its super options).
	controllers []string
}

// Detect finds the hierarchies of the memory, pids and cpu controllers in
// the mount table at path (DefaultMountInfo when empty): a cgroup v2 mount
// that offers all three, or else v1 hierarchies for each. A mount point that
// is no longer a cgroup filesystem (hidden by a later mount) does not count.
// With neither, the error is Unavailable and says what was found.
func Detect(path string) (Layout, error) {
	if path == "" {
		path = DefaultMountInfo
	}
	mounts, err := readMountInfo(path)
	if err != nil {
		return Layout{}, errdefs.With(errdefs.Unavailable, "cannot read the mount table", err)
	}
	var found []string
	for _, m := range mounts {
		if !m.v2 || !isFS(m.point, unix.CGROUP2_SUPER_MAGIC) {
			continue
		}
		b, err := os.ReadFile(m.point + "/cgroup.controllers")
		if err != nil {
			continue
		}
		have := strings.Fields(string(b))
		var missing []string
		for _, c := range Controllers {
			if !contains(have, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) == 0 {
			l := Layout{Version: V2, Mounts: map[string]string{}, Roots: map[string]string{}}
			for _, c := range Controllers {
				l.Mounts[c], l.Roots[c] = m.point, m.root
			}
			return l, nil
		}
		found = append(found, fmt.Sprintf("cgroup v2 at %s lacks %s", m.point, strings.Join(missing, ", ")))
	}

	l := Layout{Version: V1, Mounts: map[string]string{}, Roots: map[string]string{}}
	var missing []string
	for _, c := range Controllers {
		for _, m := range mounts {
			if !m.v2 && contains(m.controllers, c) && isFS(m.point, unix.CGROUP_SUPER_MAGIC) {
				l.Mounts[c], l.Roots[c] = m.point, m.root
				break
			}
		}
		if l.Mounts[c] == "" {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return l, nil
	}
	found = append(found, "no cgroup v1 hierarchy for "+strings.Join(missing, ", "))
	return Layout{}, errdefs.Unavailablef("no usable cgroup hierarchy for the memory, pids and cpu controllers: %s", strings.Join(found, "; "))
}

func isFS(dir string, magic int64) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && int64(st.Type) == magic
}

// readMountInfo reads the cgroup filesystems of a mountinfo file.
func readMountInfo(path string) ([]mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if m, ok := parseMountInfoLine(sc.Text()); ok {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// parseMountInfoLine reads one line of proc(5)'s mountinfo:
//
//	36 35 98:0 /root /mnt/point rw,noatime master:1 - cgroup cgroup rw,memory
//
// and reports whether it is a cgroup filesystem.
func parseMountInfoLine(line string) (mount, bool) {
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if len(fields) < 5 || sep < 0 || sep+3 >= len(fields) {
		return mount{}, false
	}
	m := mount{root: unescapeOctal(fields[3]), point: unescapeOctal(fields[4])}
	switch fields[sep+1] {
	case "cgroup2":
		m.v2 = true
	case "cgroup":
		m.controllers = strings.Split(fields[sep+3], ",")
	default:
		return mount{}, false
	}
	return m, true
}

// unescapeOctal undoes mountinfo's \ooo escapes (space, tab, newline,
// backslash).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
