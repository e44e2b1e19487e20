// Package storagetest is the conformance suite every storage.Backend must
// pass. A backend's own test calls Run with a Harness that knows how to make
// a base image and read and write a disk of that backend.
package storagetest

import (
	"context"
	"fmt"
	"os"
	"slices"
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
	// LaterPattern is written after a snapshot, ForkPattern by a fork.
	LaterPattern byte = 0x33
	ForkPattern  byte = 0x77
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

	t.Run("DisksListsExactlyTheDisks", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		for _, id := range []string{"ws-one", "ws-two"} {
			if _, err := b.Create(ctx(t), id, base, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Destroy(ctx(t), "ws-one"); err != nil {
			t.Fatal(err)
		}
		got, err := b.Disks(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != "ws-two" {
			t.Fatalf("Disks() = %v, want [ws-two]", got)
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

	runLayers(t, h, ctx)
}

// runLayers is the part of the suite about frozen layers: snapshots,
// restores, forks and what Prune may remove.
func runLayers(t *testing.T, h Harness, ctx func(*testing.T) context.Context) {
	t.Run("FreezeKeepsTheLayerAndStartsAnEmptyTop", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		old, err := b.Create(ctx(t), "ws-f", base, 0)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(t, old, 0, PatternLen, DiskPattern)
		oldTop, err := b.Top("ws-f")
		if err != nil {
			t.Fatal(err)
		}
		frozen, err := b.Freeze(ctx(t), "ws-f", nil)
		if err != nil {
			t.Fatal(err)
		}
		if frozen != oldTop {
			t.Errorf("Freeze froze %q, want the top %q", frozen, oldTop)
		}
		top, err := b.Path("ws-f")
		if err != nil {
			t.Fatal(err)
		}
		if top == old {
			t.Fatal("Freeze left the disk on its old top")
		}
		if !h.Holds(t, top, 0, PatternLen, DiskPattern) {
			t.Fatal("the new top does not show what the frozen layer holds")
		}
		h.Write(t, top, 0, PatternLen, LaterPattern)
		if chain, err := b.Chain(ctx(t), "ws-f"); err != nil || !slices.Equal(chain, []string{frozen}) {
			t.Errorf("Chain() = %v, %v; want [%s]", chain, err, frozen)
		}
		info, err := b.Layer(ctx(t), frozen)
		if err != nil || info.Parent != "" || info.Allocated < PatternLen {
			t.Errorf("Layer(frozen) = %+v, %v; want no parent (the base) and at least the written bytes", info, err)
		}
		// The frozen layer still holds what it held: a branch on it shows it.
		fork, err := b.Branch(ctx(t), "ws-f2", frozen)
		if err != nil {
			t.Fatal(err)
		}
		if !h.Holds(t, fork, 0, PatternLen, DiskPattern) {
			t.Fatal("a write to the new top reached the frozen layer")
		}
		u, err := b.Usage(ctx(t), "ws-f")
		if err != nil || u.Allocated < 2*PatternLen {
			t.Errorf("Usage() = %+v, %v; want the top and the frozen layer counted", u, err)
		}
	})

	t.Run("BranchForksAndRestores", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		p, err := b.Create(ctx(t), "ws-src", base, 2*h.BaseSize)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(t, p, 0, PatternLen, DiskPattern)
		snap, err := b.Freeze(ctx(t), "ws-src", nil)
		if err != nil {
			t.Fatal(err)
		}
		p, _ = b.Path("ws-src")
		h.Write(t, p, 0, PatternLen, LaterPattern)

		fork, err := b.Branch(ctx(t), "ws-fork", snap)
		if err != nil {
			t.Fatal(err)
		}
		if !h.Holds(t, fork, 0, PatternLen, DiskPattern) {
			t.Fatal("a fork does not show its snapshot's content")
		}
		h.Write(t, fork, 0, PatternLen, ForkPattern)
		if !h.Holds(t, p, 0, PatternLen, LaterPattern) {
			t.Fatal("a write to a fork shows in its source")
		}
		if u, err := b.Usage(ctx(t), "ws-fork"); err != nil || u.VirtualSize != 2*h.BaseSize {
			t.Errorf("fork Usage() = %+v, %v; want the source's virtual size %d", u, err, 2*h.BaseSize)
		}
		deps, err := b.Dependents(ctx(t), snap)
		slices.Sort(deps)
		if err != nil || !slices.Equal(deps, []string{"ws-fork", "ws-src"}) {
			t.Errorf("Dependents() = %v, %v; want both disks", deps, err)
		}

		// A restore replaces the source's top; the fork is unaffected.
		restored, err := b.Branch(ctx(t), "ws-src", snap)
		if err != nil {
			t.Fatal(err)
		}
		if !h.Holds(t, restored, 0, PatternLen, DiskPattern) {
			t.Fatal("a restored disk does not show its snapshot's content")
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("the replaced top is still there: %v", err)
		}
		if !h.Holds(t, fork, 0, PatternLen, ForkPattern) {
			t.Fatal("restoring the source changed its fork")
		}

		top, _ := b.Top("ws-fork")
		_, err = b.Branch(ctx(t), "ws-x", top)
		wantClass(t, err, errdefs.Conflict, "a branch on a writable top")
		_, err = b.Branch(ctx(t), "ws-x", "0123456789abcdef0123456789abcdef")
		wantClass(t, err, errdefs.NotFound, "a branch on a missing layer")
		for _, bad := range []string{"", "../x", "0123456789ABCDEF0123456789ABCDEF"} {
			_, err = b.Branch(ctx(t), "ws-x", bad)
			wantClass(t, err, errdefs.Invalid, fmt.Sprintf("a branch on layer %q", bad))
			_, err = b.MemoryPath(bad)
			wantClass(t, err, errdefs.Invalid, fmt.Sprintf("MemoryPath(%q)", bad))
		}
		if _, err := b.Path("ws-x"); !errdefs.Is(err, errdefs.NotFound) {
			t.Errorf("a refused Branch left a disk behind: Path() = %v", err)
		}
	})

	t.Run("PruneRemovesOnlyWhatNothingNeeds", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		if _, err := b.Create(ctx(t), "ws-p", base, 0); err != nil {
			t.Fatal(err)
		}
		l1, err := b.Freeze(ctx(t), "ws-p", nil)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := b.Freeze(ctx(t), "ws-p", nil)
		if err != nil {
			t.Fatal(err)
		}
		if info, err := b.Layer(ctx(t), l2); err != nil || info.Parent != l1 {
			t.Fatalf("Layer(l2) = %+v, %v; want parent %s", info, err, l1)
		}
		if _, err := b.Branch(ctx(t), "ws-q", l1); err != nil {
			t.Fatal(err)
		}
		mem, err := b.MemoryPath(l1)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mem, []byte("memory state"), 0o600); err != nil {
			t.Fatal(err)
		}

		// Everything is still needed by the two disks or pinned.
		if _, err := b.Prune(ctx(t), map[string]storage.Pin{l1: {Memory: true}}); err != nil {
			t.Fatal(err)
		}
		if info, err := b.Layer(ctx(t), l1); err != nil || info.MemoryBytes != int64(len("memory state")) {
			t.Fatalf("a pinned layer's memory was pruned: %+v, %v", info, err)
		}
		if err := b.Destroy(ctx(t), "ws-p"); err != nil {
			t.Fatal(err)
		}
		// l2 was only ws-p's; l1 stays under ws-q, but unpinned its memory goes.
		if _, err := b.Prune(ctx(t), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Layer(ctx(t), l2); !errdefs.Is(err, errdefs.NotFound) {
			t.Errorf("a layer nothing needs survived Prune: %v", err)
		}
		info, err := b.Layer(ctx(t), l1)
		if err != nil {
			t.Fatalf("Prune removed a layer a disk stands on: %v", err)
		}
		if info.MemoryBytes != 0 {
			t.Error("Prune kept the memory of an unpinned layer")
		}
		p, _ := b.Path("ws-q")
		if !h.Holds(t, p, 0, PatternLen, BasePattern) {
			t.Error("the remaining disk lost its content")
		}

		// A pinned layer keeps its parents, even with no disk on it.
		if _, err := b.Freeze(ctx(t), "ws-q", nil); err != nil {
			t.Fatal(err)
		}
		l3, _ := b.Chain(ctx(t), "ws-q")
		if err := b.Destroy(ctx(t), "ws-q"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Prune(ctx(t), map[string]storage.Pin{l3[0]: {}}); err != nil {
			t.Fatal(err)
		}
		for _, l := range l3 {
			if _, err := b.Layer(ctx(t), l); err != nil {
				t.Errorf("Prune removed %s, which a pinned layer stands on: %v", l, err)
			}
		}
		if _, err := b.Prune(ctx(t), nil); err != nil {
			t.Fatal(err)
		}
		for _, l := range l3 {
			if _, err := b.Layer(ctx(t), l); !errdefs.Is(err, errdefs.NotFound) {
				t.Errorf("layer %s survived with nothing needing it: %v", l, err)
			}
		}
	})

	t.Run("SquashKeepsTheDiskAndShortensTheChain", func(t *testing.T) {
		b, base := h.New(t), h.Base(t)
		p, err := b.Create(ctx(t), "ws-s", base, 0)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(t, p, 0, PatternLen, DiskPattern)
		l1, err := b.Freeze(ctx(t), "ws-s", nil)
		if err != nil {
			t.Fatal(err)
		}
		p, _ = b.Path("ws-s")
		h.Write(t, p, PatternLen, PatternLen, LaterPattern)
		l2, err := b.Freeze(ctx(t), "ws-s", nil)
		if err != nil {
			t.Fatal(err)
		}
		p, _ = b.Path("ws-s")
		h.Write(t, p, 2*PatternLen, PatternLen, ForkPattern)
		holdsAll := func(what string) {
			t.Helper()
			if !h.Holds(t, p, 0, PatternLen, DiskPattern) || !h.Holds(t, p, PatternLen, PatternLen, LaterPattern) ||
				!h.Holds(t, p, 2*PatternLen, PatternLen, ForkPattern) {
				t.Fatalf("%s changed what the disk holds", what)
			}
		}

		// A middle layer: its content moves into the layer above.
		if err := b.Squash(ctx(t), "ws-s", l1, nil); err != nil {
			t.Fatal(err)
		}
		holdsAll("squashing a middle layer")
		if chain, _ := b.Chain(ctx(t), "ws-s"); !slices.Equal(chain, []string{l2}) {
			t.Errorf("chain after squashing %s = %v, want [%s]", l1, chain, l2)
		}
		if _, err := b.Prune(ctx(t), map[string]storage.Pin{l2: {}}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Layer(ctx(t), l1); !errdefs.Is(err, errdefs.NotFound) {
			t.Errorf("the squashed layer survived Prune: %v", err)
		}
		holdsAll("pruning the squashed layer")

		// A layer another disk stands on is not this disk's to change.
		if _, err := b.Branch(ctx(t), "ws-s2", l2); err != nil {
			t.Fatal(err)
		}
		wantClass(t, b.Squash(ctx(t), "ws-s", l2, nil), errdefs.Conflict, "squashing a shared layer")
		if err := b.Destroy(ctx(t), "ws-s2"); err != nil {
			t.Fatal(err)
		}
		// The bottom layer: the top then stands on the base.
		if err := b.Squash(ctx(t), "ws-s", l2, nil); err != nil {
			t.Fatal(err)
		}
		holdsAll("squashing the bottom layer")
		if chain, _ := b.Chain(ctx(t), "ws-s"); len(chain) != 0 {
			t.Errorf("chain after squashing every layer = %v", chain)
		}
		wantClass(t, b.Squash(ctx(t), "ws-s", l2, nil), errdefs.NotFound, "squashing a layer not in the chain")
	})

	t.Run("Space", func(t *testing.T) {
		s, err := h.New(t).Space(ctx(t))
		if err != nil || s.Total <= 0 || s.Free < 0 || s.Free > s.Total {
			t.Errorf("Space() = %+v, %v", s, err)
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
