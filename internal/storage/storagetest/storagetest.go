// Package storagetest is the conformance suite every storage.Backend must
// pass. A backend's own test calls Run with a Harness that knows how to make
// a base image and read and write a disk of that backend.
package storagetest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/storage"
)

// Pattern bytes the suite writes. The harness's base image holds BasePattern
// in its first PatternLen bytes.
const (
	BasePattern byte  = 0xAA
	DiskPattern byte  = 0x55
	PatternLen  int64 = 1 << 20
)

// Harness adapts the suite to one backend.
type Harness struct {
	// New returns an empty backend for one test.
	New func(t *testing.T) storage.Backend
	// Base returns a base image path, read-only, of BaseSize bytes, whose
	// first PatternLen bytes are BasePattern.
	Base     func(t *testing.T) string
	BaseSize int64
	// Write fills n bytes at off of the disk at path with b.
	Write func(t *testing.T, path string, off, n int64, b byte)
	// Holds reports whether n bytes at off of the disk (or base) at path
	// all equal b.
	Holds func(t *testing.T, path string, off, n int64, b byte) bool
}

// Run runs the conformance suite against h.
func Run(t *testing.T, h Harness) {
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return c
	}

	t.Run("CreateSeesBaseAndWritesOnlyItsLayer", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		baseBefore := fileState(t, base)
		pa, err := b.Create(ctx(t), "ws-a", base, 0)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := b.Create(ctx(t), "ws-b", base, 0)
		if err != nil {
			t.Fatal(err)
		}
		if pa == pb {
			t.Fatalf("two workspaces share the disk path %s", pa)
		}
		if !h.Holds(t, pa, 0, PatternLen, BasePattern) {
			t.Fatal("a new disk does not show the base image's content")
		}
		h.Write(t, pa, 0, PatternLen, DiskPattern)
		if !h.Holds(t, pa, 0, PatternLen, DiskPattern) {
			t.Fatal("a write to the disk did not stick")
		}
		if !h.Holds(t, pb, 0, PatternLen, BasePattern) {
			t.Fatal("a write to one workspace's disk shows in another's")
		}
		if !h.Holds(t, base, 0, PatternLen, BasePattern) || fileState(t, base) != baseBefore {
			t.Fatal("the base image was written")
		}
	})

	t.Run("PathAndPermissions", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		p, err := b.Create(ctx(t), "ws-perm", base, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Path("ws-perm")
		if err != nil || got != p {
			t.Fatalf("Path() = %q, %v; want %q as Create returned", got, err, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("disk mode %v: group or others have access", perm)
		}
	})

	t.Run("VirtualSize", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		if _, err := b.Create(ctx(t), "ws-default", base, 0); err != nil {
			t.Fatal(err)
		}
		u, err := b.Usage(ctx(t), "ws-default")
		if err != nil {
			t.Fatal(err)
		}
		if u.VirtualSize != h.BaseSize {
			t.Errorf("size 0: virtual size %d, want the base's %d", u.VirtualSize, h.BaseSize)
		}
		big := 4 * h.BaseSize
		if _, err := b.Create(ctx(t), "ws-big", base, big); err != nil {
			t.Fatal(err)
		}
		if u, err := b.Usage(ctx(t), "ws-big"); err != nil || u.VirtualSize != big {
			t.Errorf("Usage() = %+v, %v; want virtual size %d", u, err, big)
		}
		_, err = b.Create(ctx(t), "ws-small", base, h.BaseSize/2)
		wantClass(t, err, errdefs.Invalid, "a disk smaller than its base")
		if _, err := b.Path("ws-small"); !errdefs.Is(err, errdefs.NotFound) {
			t.Errorf("a refused Create left a disk behind: Path() = %v", err)
		}
	})

	t.Run("UsageCountsWrites", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		p, err := b.Create(ctx(t), "ws-usage", base, 0)
		if err != nil {
			t.Fatal(err)
		}
		before, err := b.Usage(ctx(t), "ws-usage")
		if err != nil {
			t.Fatal(err)
		}
		if before.Allocated >= 4*PatternLen {
			t.Errorf("a new disk takes %d bytes; it should not copy the base", before.Allocated)
		}
		h.Write(t, p, 0, 8*PatternLen, DiskPattern)
		after, err := b.Usage(ctx(t), "ws-usage")
		if err != nil {
			t.Fatal(err)
		}
		if after.Allocated < before.Allocated+8*PatternLen {
			t.Errorf("after writing %d bytes usage went from %d to %d", 8*PatternLen, before.Allocated, after.Allocated)
		}
	})

	t.Run("CreateTwiceConflicts", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		p, err := b.Create(ctx(t), "ws-dup", base, 0)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(t, p, 0, PatternLen, DiskPattern)
		_, err = b.Create(ctx(t), "ws-dup", base, 0)
		wantClass(t, err, errdefs.Conflict, "a second Create of one id")
		if !h.Holds(t, p, 0, PatternLen, DiskPattern) {
			t.Fatal("a refused second Create changed the existing disk")
		}
	})

	t.Run("MissingBase", func(t *testing.T) {
		b := h.New(t)
		_, err := b.Create(ctx(t), "ws-nobase", t.TempDir()+"/no-such-base", 0)
		wantClass(t, err, errdefs.Unavailable, "a missing base")
		if _, err := b.Path("ws-nobase"); !errdefs.Is(err, errdefs.NotFound) {
			t.Errorf("a failed Create left a disk behind: Path() = %v", err)
		}
	})

	t.Run("InvalidIDs", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		for _, id := range []string{"", "..", "../escape", "a/b", ".hidden", "-flag"} {
			_, err := b.Create(ctx(t), id, base, 0)
			wantClass(t, err, errdefs.Invalid, fmt.Sprintf("Create(%q)", id))
			wantClass(t, b.Destroy(ctx(t), id), errdefs.Invalid, fmt.Sprintf("Destroy(%q)", id))
			_, err = b.Path(id)
			wantClass(t, err, errdefs.Invalid, fmt.Sprintf("Path(%q)", id))
		}
	})

	t.Run("DestroyIsIdempotent", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		p, err := b.Create(ctx(t), "ws-gone", base, 0)
		if err != nil {
			t.Fatal(err)
		}
		keep, err := b.Create(ctx(t), "ws-keep", base, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if err := b.Destroy(ctx(t), "ws-gone"); err != nil {
				t.Fatalf("Destroy #%d: %v", i+1, err)
			}
		}
		if err := b.Destroy(ctx(t), "ws-never-existed"); err != nil {
			t.Fatalf("Destroy of an unknown id: %v", err)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("the destroyed disk file is still there: %v", err)
		}
		_, err = b.Path("ws-gone")
		wantClass(t, err, errdefs.NotFound, "Path after Destroy")
		_, err = b.Usage(ctx(t), "ws-gone")
		wantClass(t, err, errdefs.NotFound, "Usage after Destroy")
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("destroying one disk touched another: %v", err)
		}
		if fileState(t, base) == "" {
			t.Error("Destroy removed the base image")
		}
		// The id can be used again.
		if _, err := b.Create(ctx(t), "ws-gone", base, 0); err != nil {
			t.Fatalf("Create after Destroy: %v", err)
		}
	})

	t.Run("ConcurrentCreates", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				_, err := b.Create(ctx(t), fmt.Sprintf("ws-c%d", i), base, 0)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
}

// fileState summarises what a write would change about a file.
func fileState(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d %d %v", fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
}

func wantClass(t *testing.T, err error, c errdefs.Class, what string) {
	t.Helper()
	if !errdefs.Is(err, c) {
		t.Errorf("%s: got error %v, want class %s", what, err, c)
	}
}
