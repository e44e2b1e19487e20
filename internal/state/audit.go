package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Bounds of an audit entry. Oversized text fields are cut, and an oversized
// Detail is replaced by a marker: an audit record is never refused for size.
const (
	MaxAuditDetailBytes = 4 << 10
	maxAuditFieldBytes  = 256
	// DefaultAuditLimit is how many entries ListAudit returns when the
	// filter names no limit; MaxAuditLimit is the most it ever returns.
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditResult is how a call ended.
type AuditResult string

// The audit results.
const (
	AuditOK    AuditResult = "ok"
	AuditError AuditResult = "error"
)

// AuditEntry is one tool call or dashboard action. The log is append-only:
// there is no method to change or remove an entry, and the database refuses
// UPDATE and DELETE on its table.
type AuditEntry struct {
	// ID is assigned by the store, increasing in append order.
	ID int64
	// Time is when the action happened; zero means now.
	Time time.Time
	// SessionID is empty for actions that have no session.
	SessionID string
	// Actor is who acted: "mcp:<session>", "cli", "dashboard".
	Actor string
	// Action is the tool or action name.
	Action string
	// Target is what was acted on, usually a workspace ID.
	Target string
	Result AuditResult
	// ErrorClass is the errdefs class name of a failure, empty on success.
	ErrorClass string
	DurationMs int64
	// Detail is a small JSON value, at most MaxAuditDetailBytes. It must
	// never hold a secret.
	Detail json.RawMessage
}

// AuditFilter selects entries for ListAudit.
type AuditFilter struct {
	// Since leaves out entries before this time; zero means no bound.
	Since time.Time
	// Session, if set, selects one session's entries.
	Session string
	// Limit is the most entries returned: 0 means DefaultAuditLimit, and
	// it is capped at MaxAuditLimit.
	Limit int
}

const auditColumns = `id, at, session_id, actor, action, target, result, error_class, duration_ms, detail`

// AppendAudit adds an entry to the audit log. In a Tx with the change it
// records, the change and its record commit together.
func (t *Tx) AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	if e.Actor == "" {
		return AuditEntry{}, errdefs.Invalidf("actor: must not be empty")
	}
	if e.Action == "" {
		return AuditEntry{}, errdefs.Invalidf("action: must not be empty")
	}
	if e.Result != AuditOK && e.Result != AuditError {
		return AuditEntry{}, errdefs.Invalidf("result: must be ok or error")
	}
	if len(e.Detail) > 0 && !json.Valid(e.Detail) {
		return AuditEntry{}, errdefs.Invalidf("detail: not valid JSON")
	}
	if len(e.Detail) > MaxAuditDetailBytes {
		e.Detail = json.RawMessage(fmt.Sprintf(`{"truncated":true,"bytes":%d}`, len(e.Detail)))
	}
	if e.Time.IsZero() {
		e.Time = now()
	}
	e.SessionID = truncate(e.SessionID, maxAuditFieldBytes)
	e.Actor = truncate(e.Actor, maxAuditFieldBytes)
	e.Action = truncate(e.Action, maxAuditFieldBytes)
	e.Target = truncate(e.Target, maxAuditFieldBytes)
	e.ErrorClass = truncate(e.ErrorClass, maxAuditFieldBytes)
	res, err := t.tx.ExecContext(ctx,
		`INSERT INTO audit_log (at, session_id, actor, action, target, result, error_class, duration_ms, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		nanos(e.Time), e.SessionID, e.Actor, e.Action, e.Target, string(e.Result), e.ErrorClass,
		e.DurationMs, string(e.Detail))
	if err != nil {
		return AuditEntry{}, fmt.Errorf("appending audit entry: %w", err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return AuditEntry{}, fmt.Errorf("appending audit entry: %w", err)
	}
	return e, nil
}

// ListAudit returns the entries f selects, newest first.
func (t *Tx) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	return listAudit(ctx, t.tx, f)
}

func listAudit(ctx context.Context, q querier, f AuditFilter) ([]AuditEntry, error) {
	var where []string
	var args []any
	if !f.Since.IsZero() {
		where = append(where, `at >= ?`)
		args = append(args, nanos(f.Since))
	}
	if f.Session != "" {
		where = append(where, `session_id = ?`)
		args = append(args, f.Session)
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultAuditLimit
	case limit > MaxAuditLimit:
		limit = MaxAuditLimit
	}
	query := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing audit log: %w", err)
	}
	return scanRows(rows, "audit entry", func(r scanner) (AuditEntry, error) {
		var e AuditEntry
		var at int64
		var result, detail string
		if err := r.Scan(&e.ID, &at, &e.SessionID, &e.Actor, &e.Action, &e.Target, &result,
			&e.ErrorClass, &e.DurationMs, &detail); err != nil {
			return e, err
		}
		e.Time, e.Result = fromNanos(at), AuditResult(result)
		if detail != "" {
			e.Detail = json.RawMessage(detail)
		}
		return e, nil
	})
}

// AppendAudit adds an entry to the audit log in its own transaction.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	return inTx(ctx, s, func(tx *Tx) (AuditEntry, error) { return tx.AppendAudit(ctx, e) })
}

// ListAudit returns the entries f selects, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	return listAudit(ctx, s.r, f)
}
