// Package cgroup confines a process to a control group of its own, with
// memory, pids and CPU limits, on cgroup v2 or, where the memory, pids and
// cpu controllers are mounted only as cgroup v1 hierarchies, on v1. agentiso
// puts every VM's QEMU into one (finding H-8): a VM cannot take more of the
// host than its size allows, whatever its guest does.
//
// Every group lives under one parent (for example "agentiso"), directly below
// the root of each hierarchy: not below the daemon's own group, so a service
// manager that restarts the daemon never sees, freezes or kills the VMs.
//
// A process is moved into its group after it has started. The memory it had
// already used stays charged where it was (the kernel does not move charges);
// for QEMU, started paused, that is its binary and the guest kernel image,
// tens of MiB, and everything the guest does afterwards is charged to the
// VM's group.
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
)

// Version is a cgroup hierarchy version.
type Version int

// The versions.
const (
	V1 Version = 1
	V2 Version = 2
)

func (v Version) String() string { return "v" + strconv.Itoa(int(v)) }

// The controllers every group needs.
const (
	Memory = "memory"
	Pids   = "pids"
	CPU    = "cpu"
)

// Controllers are the controllers a group is limited by, in the order they
// are set up.
var Controllers = []string{Memory, Pids, CPU}

// cpuPeriod is the CFS period, in microseconds, a CPU quota is set in.
const cpuPeriod = 100000

// removeWait bounds how long Remove waits for a group whose last process
// is exiting to become removable.
const removeWait = 5 * time.Second

// Limits bound one group.
type Limits struct {
	// MemoryBytes bounds memory, RAM and swap together. The kernel's OOM
	// killer ends a process of the group that needs more.
	MemoryBytes int64
	// Tasks bounds the group's processes and threads.
	Tasks int64
	// CPUs bounds CPU time: the group gets at most CPUs cores' worth.
	CPUs int
}

func (l Limits) validate() error {
	var errs []error
	if l.MemoryBytes < 16<<20 {
		errs = append(errs, fmt.Errorf("memory limit %d bytes is below 16 MiB", l.MemoryBytes))
	}
	if l.Tasks < 1 {
		errs = append(errs, fmt.Errorf("tasks limit %d is below 1", l.Tasks))
	}
	if l.CPUs < 1 {
		errs = append(errs, fmt.Errorf("cpu limit %d is below 1", l.CPUs))
	}
	return errors.Join(errs...)
}

// Options configure a Manager.
type Options struct {
	// Parent is the group, relative to each hierarchy's root, under which
	// every group of this Manager is made: a clean relative path such as
	// "agentiso".
	Parent string
	// MountInfo is the mount table to find the hierarchies in; empty means
	// /proc/self/mountinfo.
	MountInfo string
}

// Manager makes, limits and removes groups under one parent.
type Manager struct {
	layout Layout
	parent string
	// procRoot is where /proc/<pid>/cgroup is read (tests change it).
	procRoot string
	// removeWait bounds Remove's wait for an exiting process.
	removeWait time.Duration
}

// New finds the cgroup hierarchies (Detect) and creates the parent group in
// each, enabling the controllers it needs on cgroup v2. The error is
// Unavailable when the host has no usable hierarchies, and says why.
func New(o Options) (*Manager, error) {
	m, err := Open(o)
	if err != nil {
		return nil, err
	}
	if err := m.prepareParent(); err != nil {
		return nil, errdefs.With(errdefs.Unavailable, fmt.Sprintf("cannot create the cgroup %s (%s): %v", o.Parent, m.layout, err), err)
	}
	return m, nil
}

// Open is New without creating anything: for reading stats, checks and
// removing groups.
func Open(o Options) (*Manager, error) {
	if err := ValidateParent(o.Parent); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	layout, err := Detect(o.MountInfo)
	if err != nil {
		return nil, err
	}
	return &Manager{layout: layout, parent: o.Parent, procRoot: "/proc", removeWait: removeWait}, nil
}

// ValidateParent checks a parent group path: relative, clean, and made of
// names.Validate names.
func ValidateParent(parent string) error {
	if parent == "" {
		return errors.New("cgroup parent: must not be empty")
	}
	if filepath.IsAbs(parent) || filepath.Clean(parent) != parent {
		return fmt.Errorf("cgroup parent: %q is not a clean relative path", parent)
	}
	for _, part := range strings.Split(parent, "/") {
		if err := names.Validate("cgroup parent", part); err != nil {
			return err
		}
	}
	return nil
}

// Layout reports the hierarchies in use.
func (m *Manager) Layout() Layout { return m.layout }

// Dir is the directory of group id in the hierarchy of controller.
func (m *Manager) Dir(controller, id string) string {
	return filepath.Join(m.layout.Mounts[controller], m.parent, id)
}

// dirs are the distinct directories of group id (one on v2, one per
// controller on v1), in Controllers order.
func (m *Manager) dirs(id string) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range Controllers {
		d := m.Dir(c, id)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

func (m *Manager) prepareParent() error {
	for _, mount := range m.layout.distinctMounts() {
		if m.layout.Version == V2 {
			// Each group on the way down must hand the controllers to its
			// children.
			dir := mount
			for _, part := range append([]string{""}, strings.Split(m.parent, "/")...) {
				dir = filepath.Join(dir, part)
				if err := mkdir(dir); err != nil {
					return err
				}
				if err := enableControllers(dir); err != nil {
					return err
				}
			}
			continue
		}
		if err := os.MkdirAll(filepath.Join(mount, m.parent), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// enableControllers lets the children of the v2 group dir use the memory,
// pids and cpu controllers.
func enableControllers(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	have := strings.Fields(string(b))
	var add []string
	for _, c := range Controllers {
		if !contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return writeFile(filepath.Join(dir, "cgroup.subtree_control"), strings.Join(add, " "))
}

// setting is one value written into a group's interface file. An optional
// one is skipped when the kernel does not offer the file (swap accounting
// off, for example).
type setting struct {
	controller, file, value string
	optional                bool
}

// settings are the values that put l into force, in the order they are
// written: memory before memory+swap (v1 refuses memsw below the memory
// limit), the CFS period before the quota.
func (m *Manager) settings(l Limits) []setting {
	mem := strconv.FormatInt(l.MemoryBytes, 10)
	tasks := strconv.FormatInt(l.Tasks, 10)
	quota := strconv.Itoa(l.CPUs * cpuPeriod)
	if m.layout.Version == V2 {
		return []setting{
			{controller: Memory, file: "memory.max", value: mem},
			// RAM is the whole budget: the group may not spill into swap.
			{controller: Memory, file: "memory.swap.max", value: "0", optional: true},
			{controller: Pids, file: "pids.max", value: tasks},
			{controller: CPU, file: "cpu.max", value: quota + " " + strconv.Itoa(cpuPeriod)},
		}
	}
	return []setting{
		{controller: Memory, file: "memory.limit_in_bytes", value: mem},
		// RAM and swap together within the same budget.
		{controller: Memory, file: "memory.memsw.limit_in_bytes", value: mem, optional: true},
		{controller: Pids, file: "pids.max", value: tasks},
		{controller: CPU, file: "cpu.cfs_period_us", value: strconv.Itoa(cpuPeriod)},
		{controller: CPU, file: "cpu.cfs_quota_us", value: quota},
	}
}

// Apply creates group id (or reuses it, for a process found again after a
// restart), sets l, moves pid (with all its threads) into it and confirms
// by reading back both the limits and the process's membership. The limits
// are in force before the process joins. On error the group may be left
// with pid in it: end the process, then Remove.
func (m *Manager) Apply(id string, pid int, l Limits) error {
	if err := validateID(id); err != nil {
		return err
	}
	if err := l.validate(); err != nil {
		return errdefs.Invalidf("cgroup %s: %v", id, err)
	}
	for _, d := range m.dirs(id) {
		if err := mkdir(d); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", d, err)
		}
	}
	sets := m.settings(l)
	if m.layout.Version == V1 {
		// v1 keeps memsw >= memory at every step: raising an existing
		// group's limits (a restart with a larger overhead) must raise
		// memsw first.
		if cur, err := readInt(filepath.Join(m.Dir(Memory, id), "memory.memsw.limit_in_bytes")); err == nil && cur >= 0 && cur < l.MemoryBytes {
			sets[0], sets[1] = sets[1], sets[0]
		}
	}
	for _, s := range sets {
		path := filepath.Join(m.Dir(s.controller, id), s.file)
		if err := writeFile(path, s.value); err != nil {
			if s.optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("setting %s to %s: %w", path, s.value, err)
		}
	}
	for _, d := range m.dirs(id) {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("moving pid %d into cgroup %s: %w", pid, d, err)
		}
	}
	return m.confirm(id, pid, sets)
}

// confirm checks that every setting reads back as written and that pid is
// a member of group id in each hierarchy.
func (m *Manager) confirm(id string, pid int, sets []setting) error {
	for _, s := range sets {
		path := filepath.Join(m.Dir(s.controller, id), s.file)
		b, err := os.ReadFile(path)
		if err != nil {
			if s.optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("confirming %s: %w", path, err)
		}
		if got := strings.TrimSpace(string(b)); got != s.value {
			return fmt.Errorf("confirming %s: reads %q, want %q", path, got, s.value)
		}
	}
	b, err := os.ReadFile(filepath.Join(m.procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return fmt.Errorf("confirming the cgroups of pid %d: %w", pid, err)
	}
	member := ParseProcCgroup(string(b))
	for _, c := range Controllers {
		want := filepath.Join(m.layout.Roots[c], m.parent, id)
		key := c
		if m.layout.Version == V2 {
			key = ""
		}
		if got := member[key]; got != want {
			return fmt.Errorf("confirming the %s cgroup of pid %d: it is in %q, want %q", c, pid, got, want)
		}
	}
	return nil
}

// Remove deletes group id from every hierarchy. A group that does not exist
// is not an error; one whose last process is still exiting is waited for,
// a little.
func (m *Manager) Remove(id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	var errs []error
	deadline := time.Now().Add(m.removeWait)
	for _, d := range m.dirs(id) {
		if err := rmdirWait(d, deadline); err != nil {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// RemoveParent deletes the parent group from every hierarchy if it holds no
// groups any more (for uninstall). A missing parent is not an error.
func (m *Manager) RemoveParent() error {
	var errs []error
	for _, mount := range m.layout.distinctMounts() {
		dir := filepath.Join(mount, m.parent)
		// Nested parents: remove each level that became empty.
		for dir != mount {
			if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dir, err))
				break
			}
			dir = filepath.Dir(dir)
		}
	}
	return errors.Join(errs...)
}

// Groups lists the groups under the parent (for reconciliation and checks).
func (m *Manager) Groups() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(m.layout.Mounts[Memory], m.parent))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Stats are a group's use of its limits.
type Stats struct {
	// MemoryBytes is the memory charged to the group now; MemoryPeakBytes
	// the most it has been (zero where the kernel does not say).
	MemoryBytes, MemoryPeakBytes int64
	MemoryLimitBytes             int64
	// OOMKills counts processes the group's memory limit made the kernel
	// kill.
	OOMKills int64
	// Tasks is the group's processes and threads now.
	Tasks, TasksLimit int64
}

// Stats reads group id's use of its limits.
func (m *Manager) Stats(id string) (Stats, error) {
	if err := validateID(id); err != nil {
		return Stats{}, err
	}
	mem, pids := m.Dir(Memory, id), m.Dir(Pids, id)
	var st Stats
	var err error
	read := func(dir, file string, dst *int64) {
		if err != nil {
			return
		}
		*dst, err = readInt(filepath.Join(dir, file))
	}
	if m.layout.Version == V2 {
		read(mem, "memory.current", &st.MemoryBytes)
		read(mem, "memory.max", &st.MemoryLimitBytes)
		if p, perr := readInt(filepath.Join(mem, "memory.peak")); perr == nil {
			st.MemoryPeakBytes = p
		}
		if err == nil {
			st.OOMKills, err = readKeyed(filepath.Join(mem, "memory.events"), "oom_kill")
		}
	} else {
		read(mem, "memory.usage_in_bytes", &st.MemoryBytes)
		read(mem, "memory.max_usage_in_bytes", &st.MemoryPeakBytes)
		read(mem, "memory.limit_in_bytes", &st.MemoryLimitBytes)
		if err == nil {
			st.OOMKills, err = readKeyed(filepath.Join(mem, "memory.oom_control"), "oom_kill")
		}
	}
	read(pids, "pids.current", &st.Tasks)
	read(pids, "pids.max", &st.TasksLimit)
	return st, err
}

// ParseProcCgroup reads /proc/<pid>/cgroup: each v1 controller's group,
// and the v2 group under the key "".
func ParseProcCgroup(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

func validateID(id string) error {
	if err := names.Validate("cgroup id", id); err != nil {
		return errdefs.Invalidf("%v", err)
	}
	return nil
}

func mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// writeFile writes one value to an existing interface file: cgroup files
// are never created, and a missing one is fs.ErrNotExist.
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// readKeyed reads the value of key in a "key value" per line file; a
// missing key reads as 0.
func readKeyed(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, nil
}

// rmdirWait removes a group directory, retrying while the kernel still
// counts an exiting process in it.
func rmdirWait(dir string, deadline time.Time) error {
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
