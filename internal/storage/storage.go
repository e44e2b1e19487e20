// Package storage holds workspace disks. A disk is a chain of layers: a
// read-only base image at the bottom, any number of frozen (read-only)
// layers, and one writable top layer. The base and frozen layers are never
// written. Backend is the seam; Qcow2 (qcow2 files, any filesystem) is the
// default backend.
//
// Snapshots and forks are layers: a snapshot freezes a workspace's top layer
// and starts a new, empty top on it; a restore or a fork starts a new top on
// a frozen layer. Frozen layers are shared: forks of one snapshot all sit on
// its layer. A frozen layer goes away only when Prune finds that no
// workspace's disk and no pinned (snapshot) layer needs it.
package storage

import "context"

// Backend creates and destroys workspace disks and their layers.
type Backend interface {
	// Create makes the disk of workspace id as a new top layer on base,
	// with a virtual size of virtualSize bytes (0: the base's size; smaller
	// than the base is invalid). It returns the path of the layer QEMU
	// opens. An existing disk for id is a conflict; a missing base is
	// unavailable. A failed Create leaves nothing behind.
	Create(ctx context.Context, id, base string, virtualSize int64) (string, error)
	// Disks lists the IDs of every disk in the store, so that start-up can
	// find disks no record owns (a crash between creating a disk and
	// recording it, a warm-pool VM's disk).
	Disks(ctx context.Context) ([]string, error)
	// Path returns the path of the top layer of id's disk, or a NotFound
	// error.
	Path(id string) (string, error)
	// Usage reports the size of id's disk.
	Usage(ctx context.Context, id string) (Usage, error)
	// Destroy removes id's disk: its top layer and its place in the store.
	// Frozen layers under it stay until Prune finds them unneeded. A
	// missing disk is not an error: Destroy is idempotent.
	Destroy(ctx context.Context, id string) error

	// Top returns the ID of id's top layer.
	Top(id string) (string, error)
	// Freeze makes id's top layer a frozen layer and gives id a new, empty
	// top layer on it; it returns the frozen layer's ID. When a running VM
	// holds the disk, live is the VM's way to switch: it is called with the
	// path the new top must have, creates it there on the old top (QEMU's
	// blockdev-snapshot-sync) and returns nil exactly when the VM now
	// writes to it. With live nil the backend creates the new top itself.
	// A failed Freeze leaves the disk as it was.
	Freeze(ctx context.Context, id string, live func(ctx context.Context, newTop string) error) (string, error)
	// Branch gives id a new, empty top layer on the frozen layer: the disk
	// of a new workspace (a fork), or, when id has a disk already, its
	// replacement (a restore; the old top is removed, so no VM may be
	// running on it). It returns the new top's path.
	Branch(ctx context.Context, id, layer string) (string, error)
	// Squash takes the frozen layer out of id's chain: what it holds moves
	// into the layer above it, which then stands on the layer's parent; the
	// guest sees the same disk. It refuses a layer another disk stands on.
	// The caller makes sure no snapshot names it. When a running VM holds
	// the disk, live does the move (QEMU's block-stream into the node of
	// the file child, down to the node of the file parent); otherwise the
	// backend does. The squashed layer is left for Prune.
	Squash(ctx context.Context, id, layer string, live func(ctx context.Context, child, parent string) error) error
	// Chain lists the frozen layers under id's top, nearest first.
	Chain(ctx context.Context, id string) ([]string, error)
	// Layer describes a frozen layer.
	Layer(ctx context.Context, layer string) (LayerInfo, error)
	// MemoryPath is where the memory state saved with layer is kept (a VM
	// migration stream, written by QEMU).
	MemoryPath(layer string) (string, error)
	// Dependents lists the workspaces whose disk has layer in its chain.
	Dependents(ctx context.Context, layer string) ([]string, error)
	// Prune removes every frozen layer that is not pinned and that no
	// workspace disk or pinned layer stands on, and every memory state
	// whose layer is not pinned with Memory set. It returns what it removed.
	Prune(ctx context.Context, pins map[string]Pin) ([]string, error)
	// Repair finishes what a crash interrupted: a disk whose VM switched to
	// a new top (Freeze) before the backend recorded it gets that top. Run
	// it at start-up, before VMs are re-attached and before Prune.
	Repair(ctx context.Context) error
	// Space reports the free and total space of the filesystem the backend
	// stores on.
	Space(ctx context.Context) (Space, error)
}

// Usage is the size of a workspace disk.
type Usage struct {
	// VirtualSize is the disk's size as the guest sees it.
	VirtualSize int64 `json:"virtual_size"`
	// Allocated is the host space the disk's layers take (its top and the
	// frozen layers under it, which it may share with other disks); the
	// base image is not counted.
	Allocated int64 `json:"allocated"`
}

// LayerInfo describes a frozen layer.
type LayerInfo struct {
	// Parent is the layer under it; empty when it sits on the base image.
	Parent string
	// Allocated is the host space of the layer's own file.
	Allocated int64
	// MemoryBytes is the size of the memory state kept with it, 0 if none.
	MemoryBytes int64
}

// Pin keeps a layer (a snapshot's) from Prune.
type Pin struct {
	// Memory keeps the layer's memory state too.
	Memory bool
}

// Space is the free and total space of a filesystem, in bytes.
type Space struct {
	Free  int64
	Total int64
}
