package channel_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/guest"
	"github.com/agentiso/agentiso/internal/protocol"
)

func TestEditFile(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "main.go")
	if err := os.WriteFile(f, []byte("package main\n\nfunc a() {}\nfunc a() {}\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.go")
	if err := os.Symlink("main.go", link); err != nil {
		t.Fatal(err)
	}
	res, err := p.c.EditFile(ctx, protocol.FileEdit{Path: link, Old: []byte("func a() {}"), New: []byte("func b() {\n}")})
	if err != nil {
		t.Fatal(err)
	}
	const want = "package main\n\nfunc b() {\n}\nfunc a() {}\n"
	got, _ := os.ReadFile(f)
	if string(got) != want || res.Line != 3 || res.Size != int64(len(want)) {
		t.Errorf("after the edit: %q, %+v; want only the first match replaced, on line 3", got, res)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("editing through a symlink replaced the symlink")
	}
	if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o750 {
		t.Errorf("mode %v after the edit, want 0750 kept", fi.Mode().Perm())
	}

	for _, tc := range []struct {
		name  string
		req   protocol.FileEdit
		class errdefs.Class
		text  string
	}{
		{"absent", protocol.FileEdit{Path: f, Old: []byte("func c"), New: []byte("x")}, errdefs.NotFound, "old_string: not found"},
		{"whitespace differs", protocol.FileEdit{Path: f, Old: []byte("func  a"), New: []byte("x")}, errdefs.NotFound, "old_string"},
		{"missing file", protocol.FileEdit{Path: f + ".nope", Old: []byte("x")}, errdefs.NotFound, "no such file"},
		{"directory", protocol.FileEdit{Path: dir, Old: []byte("x")}, errdefs.Invalid, "is a directory"},
		{"empty old", protocol.FileEdit{Path: f, New: []byte("x")}, errdefs.Invalid, "old_string"},
	} {
		_, err := p.c.EditFile(ctx, tc.req)
		if !errdefs.Is(err, tc.class) || !strings.Contains(errdefs.Public(err), tc.text) {
			t.Errorf("%s: %v, want %s mentioning %q", tc.name, err, tc.class, tc.text)
		}
	}
	if got2, _ := os.ReadFile(f); string(got2) != want {
		t.Errorf("a refused edit changed the file: %q", got2)
	}
}

func TestListDir(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("hello"), 0o640)
	os.Mkdir(filepath.Join(dir, "a-dir"), 0o700)
	os.Symlink("/etc/passwd", filepath.Join(dir, "c-link"))
	if err := syscall.Mkfifo(filepath.Join(dir, "d-fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := p.c.ListDir(ctx, dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, typ string
		size      int64
		mode      uint32
		target    string
	}{
		{"a-dir", protocol.EntryDir, -1, 0o700, ""},
		{"b.txt", protocol.EntryFile, 5, 0o640, ""},
		{"c-link", protocol.EntrySymlink, int64(len("/etc/passwd")), 0o777, "/etc/passwd"},
		{"d-fifo", protocol.EntryOther, 0, 0o600, ""},
	}
	if len(l.Entries) != len(want) || l.Total != 4 || l.Truncated {
		t.Fatalf("listing %+v", l)
	}
	for i, w := range want {
		e := l.Entries[i]
		if e.Name != w.name || e.Type != w.typ || (w.size >= 0 && e.Size != w.size) || e.Mode != w.mode || e.Target != w.target || e.MtimeNs == 0 {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
	}
	l, err = p.c.ListDir(ctx, dir, 2)
	if err != nil || len(l.Entries) != 2 || l.Total != 4 || !l.Truncated {
		t.Errorf("listing at most 2: %+v, %v", l, err)
	}
	if _, err := p.c.ListDir(ctx, filepath.Join(dir, "b.txt"), 10); !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), "not a directory") {
		t.Errorf("listing a file: %v", err)
	}
	if _, err := p.c.ListDir(ctx, filepath.Join(dir, "nope"), 10); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("listing a missing directory: %v", err)
	}
}

// A directory bigger than one message arrives in batches, whole.
func TestListDirInBatches(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	dir := t.TempDir()
	long := strings.Repeat("n", 200)
	for i := range 1500 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s%04d", long, i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := p.c.ListDir(testCtx(t), dir, protocol.MaxListEntries)
	if err != nil || len(l.Entries) != 1500 || l.Truncated {
		t.Fatalf("listing of 1500: %d entries, %v", len(l.Entries), err)
	}
	for i := 1; i < len(l.Entries); i++ {
		if l.Entries[i-1].Name >= l.Entries[i].Name {
			t.Fatalf("entries not sorted at %d", i)
		}
	}
}

func TestHostBoundsAListingOfAGuestThatIgnoresTheLimit(t *testing.T) {
	c := hostileGuest(t, func(protocol.Message) []protocol.Message {
		e := protocol.DirEntry{Name: "x", Type: protocol.EntryFile}
		return []protocol.Message{&protocol.DirEntries{Entries: []protocol.DirEntry{e, e, e}}, &protocol.ListEnd{Total: 3}}
	})
	if _, err := c.ListDir(testCtx(t), "/", 2); err == nil || !strings.Contains(err.Error(), "more than the 2 entries") {
		t.Errorf("ListDir from a guest sending too much: %v", err)
	}
}

func TestHostBoundsJobOutputOfAGuestThatIgnoresTheLimit(t *testing.T) {
	c := hostileGuest(t, func(protocol.Message) []protocol.Message {
		var out []protocol.Message
		for range 4*protocol.MaxJobOutputBytes/protocol.ChunkSize + 1 {
			out = append(out, &protocol.Output{Stream: protocol.Stdout, Data: strings.Repeat("x", protocol.ChunkSize)})
		}
		return append(out, &protocol.JobStatus{JobID: 1})
	})
	if _, err := c.PollJob(testCtx(t), 1); err == nil || !strings.Contains(err.Error(), "more output than a job keeps") {
		t.Errorf("PollJob from a guest sending too much: %v", err)
	}
}
