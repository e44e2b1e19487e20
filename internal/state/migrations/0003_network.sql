-- Workspace networking: address leases, network policy, port forwards and
-- the groups of workspaces allowed to reach each other.

-- One row per address in use. A lease outlives its workspace while the
-- kernel may still remember the old owner ('releasing'); only when its
-- connection-tracking and neighbour entries and rules are gone is the row
-- deleted and the address (and the MAC made from it) free again. So no
-- foreign key to workspaces.
CREATE TABLE net_leases (
	ip           TEXT PRIMARY KEY,
	mac          TEXT NOT NULL UNIQUE,
	workspace_id TEXT NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('held', 'releasing')),
	updated_at   INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX net_leases_held ON net_leases (workspace_id) WHERE state = 'held';

-- allow_internet stays in workspaces (it is set at create).
CREATE TABLE net_policies (
	workspace_id   TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
	allow_inter_vm INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE net_allowed_ports (
	workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
	port         INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
	PRIMARY KEY (workspace_id, port)
) STRICT;

CREATE TABLE port_forwards (
	workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
	guest_port   INTEGER NOT NULL CHECK (guest_port BETWEEN 1 AND 65535),
	host_port    INTEGER NOT NULL UNIQUE CHECK (host_port BETWEEN 1024 AND 65535),
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (workspace_id, guest_port)
) STRICT;

-- Members of one group may reach each other (teams use this).
CREATE TABLE net_peer_groups (
	group_name   TEXT NOT NULL,
	workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
	PRIMARY KEY (group_name, workspace_id)
) STRICT;

CREATE INDEX net_peer_groups_workspace ON net_peer_groups (workspace_id);
