package image

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// guestModules are the kernel modules the guest needs, by module name; their
// dependencies are added and ordered by resolveModules. Debian's cloud kernel
// builds ext4 in; virtio is modular.
var guestModules = []string{
	"virtio_ring", "virtio", "virtio_mmio", "virtio_console", "virtio_blk",
	"failover", "net_failover", "virtio_net", "virtio_rng",
}

// moduleName is a module's name as the kernel knows it: the file name
// without .ko, with '-' as '_' (virtio-rng.ko is virtio_rng).
func moduleName(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// moduleTree is an extracted kernel's /lib/modules/<version> directory.
type moduleTree struct {
	dir     string
	files   map[string]string // module name -> path relative to dir
	builtin map[string]bool   // modules built into the kernel
}

// openModuleTree indexes the .ko files below dir (uncompressed modules only:
// the guest loads them with finit_module and no decompressor) and reads
// modules.builtin.
func openModuleTree(dir string) (*moduleTree, error) {
	t := &moduleTree{dir: dir, files: make(map[string]string), builtin: make(map[string]bool)}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".ko") {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			t.files[moduleName(p)] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("indexing kernel modules in %s: %w", dir, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading modules.builtin: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			t.builtin[moduleName(line)] = true
		}
	}
	return t, nil
}

// depends returns the dependencies of the named module from its .modinfo.
func (t *moduleTree) depends(name string) ([]string, error) {
	rel, ok := t.files[name]
	if !ok {
		return nil, fmt.Errorf("kernel module %s: not in the kernel package", name)
	}
	info, err := readModinfo(filepath.Join(t.dir, rel))
	if err != nil {
		return nil, err
	}
	if info["name"] != "" && info["name"] != name {
		return nil, fmt.Errorf("kernel module %s: its .modinfo names it %s", rel, info["name"])
	}
	var deps []string
	for _, d := range strings.Split(info["depends"], ",") {
		if d = strings.TrimSpace(d); d != "" {
			deps = append(deps, moduleName(d))
		}
	}
	return deps, nil
}

// readModinfo reads the key=value strings of a module's .modinfo section.
// The kernel .deb ships no modules.dep, so this is where dependencies come
// from. Repeated keys (alias=) keep the last value; only name and depends
// matter here.
func readModinfo(path string) (map[string]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("reading module %s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo of %s: %w", path, err)
	}
	info := make(map[string]string)
	for _, kv := range bytes.Split(data, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			info[k] = v
		}
	}
	return info, nil
}

// resolveModules returns the modules to load for want, dependencies first,
// each once, in want's order otherwise. Built-in modules are left out (their
// dependencies are built in too). deps gives a module's direct dependencies.
func resolveModules(want []string, builtin func(string) bool, deps func(string) ([]string, error)) ([]string, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := make(map[string]int)
	var order []string
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("kernel modules depend on each other in a cycle: %s", strings.Join(append(path, name), " -> "))
		}
		if builtin(name) {
			state[name] = done
			return nil
		}
		state[name] = visiting
		ds, err := deps(name)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = done
		order = append(order, name)
		return nil
	}
	for _, w := range want {
		if err := visit(w, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
