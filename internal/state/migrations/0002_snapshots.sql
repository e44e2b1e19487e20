-- Snapshots of workspace disks (and memory).
--
-- A snapshot names one frozen disk layer of its workspace (storage package)
-- and, when it has memory, the memory state saved with that layer. The layer
-- tree itself lives in the storage backend (each layer names its parent);
-- this table only says which layers are snapshots, so a layer that no
-- snapshot and no workspace disk needs can be removed.

CREATE TABLE snapshots (
	id           TEXT PRIMARY KEY,
	-- A snapshot goes with its workspace.
	workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	-- The storage layer the snapshot froze.
	layer        TEXT NOT NULL,
	memory       INTEGER NOT NULL DEFAULT 0,
	-- "creating" until the layer (and memory) are complete; a daemon that
	-- dies in between finishes or undoes it when it starts again.
	state        TEXT NOT NULL CHECK (state IN ('creating', 'ready')),
	disk_bytes   INTEGER NOT NULL DEFAULT 0,
	memory_bytes INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL,
	UNIQUE (workspace_id, name)
) STRICT;

CREATE INDEX snapshots_layer ON snapshots (layer);
