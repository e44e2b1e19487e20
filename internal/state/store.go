// Package state is agentiso's durable state: one SQLite database (the pure-Go
// modernc.org/sqlite driver) holding sessions, workspaces and the append-only
// audit log.
//
// The file is mode 0600 and in WAL mode with synchronous=FULL, so a write
// that returned has reached the disk: a crash loses nothing acknowledged.
// Writes go through a single connection and each runs in a transaction begun
// IMMEDIATE, so they are serialised and a read-modify-write (UpdateWorkspace,
// or any Tx) never races another writer. Reads use a separate small pool and
// never wait for writes.
//
// The schema is a numbered list of SQL migrations (migrations/NNNN_name.sql),
// each applied once, in its own transaction, and recorded in the
// schema_migrations table. A database newer than the program is refused.
//
// Errors a caller may see are classified with errdefs (NotFound, Conflict,
// Invalid) and their public text never echoes a name or id the caller did not
// give: "workspace_id: no such workspace".
//
// To add a table: add the next migrations/NNNN_name.sql, and a file with its
// record type and its methods on *Tx (the unit of atomic work), plus *Store
// shorthands that run one of them in its own transaction.
package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// fileMode is the mode of the database and its WAL and shared-memory files.
const fileMode = 0o600

// busyTimeout bounds how long a statement waits for a lock held by another
// connection (another process, or the read pool during a checkpoint).
const busyTimeout = 5 * time.Second

// readConns is the size of the read pool.
const readConns = 4

// Store is an open state database. It is safe for concurrent use.
type Store struct {
	// w is the one writer connection; r is the read-only pool.
	w *sql.DB
	r *sql.DB
}

// Open opens or creates the database at path, fixes its file mode to 0600 if
// it is wrong, and applies any pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("opening state database: empty path")
	}
	if err := prepareFile(path); err != nil {
		return nil, err
	}
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("opening state database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := s.checkWriter(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening state database for reading: %w", err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	s.r = r
	if err := r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("opening state database for reading: %w", err)
	}
	return s, nil
}

// Close closes the database. Calls in flight may fail.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing state database: %w", err)
	}
	return nil
}

// Tx runs fn in one write transaction: it commits if fn returns nil and rolls
// back if fn returns an error (which Tx returns unchanged) or panics.
// Transactions are serialised. fn must use only tx, never the Store, and
// should do no slow work: every other writer waits for it.
func (s *Store) Tx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning state transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// The error of a rollback after a failure adds nothing the
			// caller can act on; the failure itself is returned.
			_ = sqlTx.Rollback()
		}
	}()
	if err := fn(&Tx{tx: sqlTx}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("committing state transaction: %w", err)
	}
	committed = true
	return nil
}

// inTx runs fn in its own transaction and returns its result, or the zero
// value and the error.
func inTx[T any](ctx context.Context, s *Store, fn func(tx *Tx) (T, error)) (T, error) {
	var out T
	err := s.Tx(ctx, func(tx *Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// Tx is one write transaction; see Store.Tx. Its methods are the Store's, run
// inside the transaction, so a check and the write that depends on it (a
// quota count and a create) are atomic.
type Tx struct {
	tx *sql.Tx
}

// querier is what both a transaction and the read pool offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// dsn builds the driver's data source name. The path goes into a file: URI,
// escaped, so no character in it can be read as a parameter.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "1")
	q.Set("_synchronous", "FULL")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_journal_mode", "WAL")
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}
	return u.String()
}

// prepareFile creates the database file 0600 if it is missing and corrects
// the mode of it and of any WAL or shared-memory file left beside it. SQLite
// then creates its side files with the main file's mode.
func prepareFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return fmt.Errorf("creating state database file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("checking state database file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("state database %s is not a regular file", path)
	}
	if fi.Mode().Perm() != fileMode {
		if err := f.Chmod(fileMode); err != nil {
			return fmt.Errorf("setting state database file mode: %w", err)
		}
	}
	for _, side := range []string{"-wal", "-shm", "-journal"} {
		fi, err := os.Lstat(path + side)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking state database file: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("state database file %s is not a regular file", path+side)
		}
		if fi.Mode().Perm() != fileMode {
			if err := os.Chmod(path+side, fileMode); err != nil {
				return fmt.Errorf("setting state database file mode: %w", err)
			}
		}
	}
	return nil
}

// checkWriter connects and confirms the settings that durability rests on.
func (s *Store) checkWriter(ctx context.Context) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("opening state database: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("opening state database: journal mode is %q, not wal", mode)
	}
	var fk int
	if err := s.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("opening state database: %w", err)
	}
	if fk != 1 {
		return errors.New("opening state database: foreign keys are off")
	}
	return nil
}

// constraint returns the extended SQLite result code of a constraint
// violation in err's chain, with the driver's message, or 0.
func constraint(err error) (code int, msg string) {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		return se.Code(), se.Error()
	}
	return 0, ""
}

// isUnique reports a UNIQUE or PRIMARY KEY violation on table.column.
func isUnique(err error, column string) bool {
	code, msg := constraint(err)
	return (code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) &&
		strings.Contains(msg, column)
}

// isForeignKey reports a foreign key violation.
func isForeignKey(err error) bool {
	code, _ := constraint(err)
	return code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// nanos stores a time; the zero time is stored as 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos; times come back in UTC.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// now is the store's clock, truncated to what it stores.
func now() time.Time { return time.Now().UTC().Round(0) }

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
