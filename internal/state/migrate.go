package state

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations, named NNNN_name.sql, and
// checks that they are numbered 1, 2, 3... without gaps or duplicates.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	files, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	// Glob returns names in lexical order, which is numeric order for
	// zero-padded versions.
	ms := make([]migration, 0, len(files))
	for i, f := range files {
		base := strings.TrimSuffix(path.Base(f), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || name == "" {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", f)
		}
		if v != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions must run 1, 2, 3... without gaps)", f, v, i+1)
		}
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", f, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	return ms, nil
}

// migrate applies every migration the database has not seen, each in its own
// transaction together with its row in schema_migrations.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		return err
	}
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`
	if _, err := s.w.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("creating migrations table: %w", err)
	}
	cur, err := schemaVersion(ctx, s.w)
	if err != nil {
		return err
	}
	if cur > len(ms) {
		return errdefs.Unavailablef("state database schema version %d is newer than this agentiso knows (%d); upgrade agentiso", cur, len(ms))
	}
	for _, m := range ms[cur:] {
		err := s.Tx(ctx, func(tx *Tx) error {
			// Read the version inside the transaction: another process
			// opening the same file may have just applied this one.
			cur, err := schemaVersion(ctx, tx.tx)
			if err != nil {
				return err
			}
			if cur >= m.version {
				return nil
			}
			if _, err := tx.tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("applying migration %d (%s): %w", m.version, m.name, err)
			}
			if _, err := tx.tx.ExecContext(ctx,
				`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, nanos(now())); err != nil {
				return fmt.Errorf("recording migration %d: %w", m.version, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return v, nil
}
