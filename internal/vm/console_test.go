package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConsoleLogRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, consoleLogName)
	const limit = 1000
	l, err := openConsoleLog(path, limit)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		fmt.Fprintf(l, "line %03d %s\n", i, strings.Repeat("x", 40))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + rotatedSuffix} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > limit {
			t.Errorf("%s is %d bytes, over the %d limit", p, fi.Size(), limit)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	tail, err := ConsoleTail(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(tail, "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], "line 099") || !strings.HasPrefix(lines[0], "line 097") {
		t.Errorf("ConsoleTail(3) = %q, want lines 097-099", tail)
	}
	// More lines than the current file holds come from the rotated one.
	tail, _ = ConsoleTail(dir, 25)
	if n := strings.Count(tail, "\n") + 1; n != 25 || !strings.HasSuffix(tail, strings.Repeat("x", 40)) {
		t.Errorf("ConsoleTail(25) gave %d lines", n)
	}
}

func TestConsoleLogAppendsAcrossOpens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, consoleLogName)
	for _, s := range []string{"first boot\n", "second boot\n"} {
		l, err := openConsoleLog(path, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		l.Write([]byte(s))
		l.Close()
	}
	tail, _ := ConsoleTail(dir, 10)
	if tail != "first boot\nsecond boot" {
		t.Errorf("ConsoleTail = %q, want both boots", tail)
	}
}

func TestConsoleTailMissingLog(t *testing.T) {
	tail, err := ConsoleTail(t.TempDir(), 10)
	if err != nil || tail != "" {
		t.Fatalf("ConsoleTail(no log) = %q, %v; want empty", tail, err)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"plain line\n":                   "plain line\n",
		"crlf\r\nline":                   "crlf\nline",
		"\x1b[0;32mOK\x1b[0m done":       "OK done",
		"bell\x07 and nul\x00":           "bell and nul",
		"tab\tkept":                      "tab\tkept",
		"bad utf8 \xff\xfe":              "bad utf8 \uFFFD\uFFFD",
		"ünïcode kept ✓":                 "ünïcode kept ✓",
		"c1 control \u009b31m stays out": "c1 control 31m stays out",
		"unterminated escape \x1b[12":    "unterminated escape ",
		"lone escape \x1b then text":     "lone escape  then text",
	} {
		if got := sanitize([]byte(in)); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadTailBoundsWhatItReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.log")
	var sb strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&sb, "line %05d\n", i)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := readTail(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 100 || !strings.HasPrefix(string(b), "line ") || !strings.HasSuffix(string(b), "line 19999\n") {
		t.Errorf("readTail(100) = %q: want whole lines from the end, at most 100 bytes", b)
	}
}

func TestSpecValidate(t *testing.T) {
	long := "/" + strings.Repeat("r", 100)
	for _, tt := range []struct {
		name string
		spec Spec
		want string
	}{
		{"ok", Spec{ID: "vm1", RunDir: "/run/agentiso/vm/vm1"}, ""},
		{"bad id", Spec{ID: "../vm1", RunDir: "/run/x"}, "id:"},
		{"no run dir", Spec{ID: "vm1"}, "run_dir:"},
		{"relative run dir", Spec{ID: "vm1", RunDir: "run"}, "run_dir:"},
		{"relative log dir", Spec{ID: "vm1", RunDir: "/run/x", LogDir: "logs"}, "log_dir:"},
		{"long run dir is fine here", Spec{ID: "vm1", RunDir: long}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.validate()
			if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestQEMULogTail(t *testing.T) {
	dir := t.TempDir()
	log := "2026-11-29T02:00:00Z qemu-system-x86_64: warning: one\n2026-11-29T02:00:01Z qemu-system-x86_64: error: two\n"
	if err := os.WriteFile(filepath.Join(dir, qemuLogName), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := QEMULogTail(dir, 1)
	if err != nil || got != "2026-11-29T02:00:01Z qemu-system-x86_64: error: two" {
		t.Fatalf("QEMULogTail(1) = %q, %v", got, err)
	}
}
