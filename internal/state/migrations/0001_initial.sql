-- Sessions, workspaces and the audit log.
--
-- Times are Unix nanoseconds; 0 means "not set". Tables are STRICT so a
-- value of the wrong type is an error, not a silent conversion.

CREATE TABLE sessions (
	id         TEXT PRIMARY KEY,
	uid        INTEGER NOT NULL,
	pid        INTEGER NOT NULL,
	transport  TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	ended_at   INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE workspaces (
	id                    TEXT PRIMARY KEY,
	name                  TEXT NOT NULL UNIQUE,
	owner                 TEXT NOT NULL REFERENCES sessions (id),
	state                 TEXT NOT NULL
		CHECK (state IN ('creating', 'running', 'stopped', 'error', 'destroying')),
	base_image            TEXT NOT NULL,
	vcpus                 INTEGER NOT NULL,
	memory_mb             INTEGER NOT NULL,
	disk_gb               INTEGER NOT NULL,
	allow_internet        INTEGER NOT NULL DEFAULT 0,
	ip                    TEXT NOT NULL DEFAULT '',
	mac                   TEXT NOT NULL DEFAULT '',
	pid                   INTEGER NOT NULL DEFAULT 0,
	-- Lineage only: the source may be destroyed later, so no foreign key.
	forked_from_workspace TEXT NOT NULL DEFAULT '',
	forked_from_snapshot  TEXT NOT NULL DEFAULT '',
	from_pool             INTEGER NOT NULL DEFAULT 0,
	boot_time_ms          INTEGER NOT NULL DEFAULT 0,
	last_error            TEXT NOT NULL DEFAULT '',
	created_at            INTEGER NOT NULL,
	updated_at            INTEGER NOT NULL,
	started_at            INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX workspaces_owner ON workspaces (owner);
-- Two workspaces can never hold the same address.
CREATE UNIQUE INDEX workspaces_ip ON workspaces (ip) WHERE ip <> '';
CREATE UNIQUE INDEX workspaces_mac ON workspaces (mac) WHERE mac <> '';

CREATE TABLE audit_log (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	at          INTEGER NOT NULL,
	-- No foreign key: an audit record must never fail for want of a session.
	session_id  TEXT NOT NULL DEFAULT '',
	actor       TEXT NOT NULL,
	action      TEXT NOT NULL,
	target      TEXT NOT NULL DEFAULT '',
	result      TEXT NOT NULL CHECK (result IN ('ok', 'error')),
	error_class TEXT NOT NULL DEFAULT '',
	duration_ms INTEGER NOT NULL DEFAULT 0,
	detail      TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_session ON audit_log (session_id, id);

-- Append-only, enforced by the database as well as by the API.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit_log is append-only');
END;
