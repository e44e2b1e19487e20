package pid1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// loadModules loads the modules listed in file, in order. There is no
// modprobe in the initramfs: the image builder has already resolved the
// dependency order.
func loadModules(log *slog.Logger, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("reading the module list: %w", err)
	}
	defer f.Close()
	paths, err := readModuleList(f)
	if err != nil {
		return fmt.Errorf("reading the module list %s: %w", file, err)
	}
	t := time.Now()
	for _, p := range paths {
		if err := loadModule(p); err != nil {
			return err
		}
	}
	log.Info("loaded modules", "count", len(paths), "took", time.Since(t).Round(time.Microsecond))
	return nil
}

// readModuleList parses a module list: one path a line; blank lines and
// lines starting with '#' are skipped.
func readModuleList(r io.Reader) ([]string, error) {
	var paths []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "/") {
			return nil, fmt.Errorf("module path %q is not absolute", line)
		}
		paths = append(paths, line)
	}
	return paths, sc.Err()
}

// loadModule loads one module; one that is already loaded is fine.
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("loading module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("loading module %s: %w", path, err)
	}
	return nil
}
