-- Teams, their members, messages and task assignments.
--
-- A team owns one workspace per member ({team}-{member}). Its VM budget is
-- shared with its sub-teams: a member row is the reservation of one VM, and
-- rows are inserted in the same transaction that checks every ancestor's
-- budget (finding H-10). Messages and tasks are stored before they are
-- acknowledged, so a crash loses nothing that was acknowledged.

CREATE TABLE teams (
	name       TEXT PRIMARY KEY,
	owner      TEXT NOT NULL REFERENCES sessions (id),
	-- NULL for a top-level team; sub-teams go with their parent.
	parent     TEXT REFERENCES teams (name) ON DELETE CASCADE,
	max_vms    INTEGER NOT NULL CHECK (max_vms >= 1),
	-- The tools its members' MCP bridge tokens allow (a JSON list); empty
	-- means the configured default.
	bridge_tools TEXT NOT NULL DEFAULT '[]',
	state      TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'destroying')),
	created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX teams_parent ON teams (parent);

CREATE TABLE team_members (
	team         TEXT NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	role         TEXT NOT NULL,
	skills       TEXT NOT NULL DEFAULT '[]',
	description  TEXT NOT NULL DEFAULT '',
	-- Empty until the member's workspace exists. No foreign key: the
	-- workspace is destroyed before the team's rows go.
	workspace_id TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (team, name)
) STRICT;

CREATE TABLE team_messages (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	team       TEXT NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
	sender     TEXT NOT NULL,
	-- One row per recipient: a broadcast is fanned out when it is stored.
	recipient  TEXT NOT NULL,
	type       TEXT NOT NULL,
	content    TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	-- 0 until a receive returned it.
	read_at    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX team_messages_inbox ON team_messages (team, recipient, read_at, id);

CREATE TABLE team_tasks (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	team         TEXT NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
	member       TEXT NOT NULL,
	task_id      TEXT NOT NULL,
	sender       TEXT NOT NULL,
	command      TEXT NOT NULL,
	workdir      TEXT NOT NULL,
	env          TEXT NOT NULL DEFAULT '{}',
	timeout_ms   INTEGER NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
	exit_code    INTEGER NOT NULL DEFAULT 0,
	stdout       TEXT NOT NULL DEFAULT '',
	stderr       TEXT NOT NULL DEFAULT '',
	truncated    INTEGER NOT NULL DEFAULT 0,
	error        TEXT NOT NULL DEFAULT '',
	duration_ms  INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL,
	finished_at  INTEGER NOT NULL DEFAULT 0,
	-- 0 until a receive returned the result.
	reported_at  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX team_tasks_member ON team_tasks (team, member, state);
