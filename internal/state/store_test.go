package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// testCtx returns a context that ends with the test, bounded so a hung
// store fails the test instead of stalling it.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openAt opens the store at path and closes it when the test ends.
func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(testCtx(t), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t *testing.T) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "state.db"))
}

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openAt(t, path)
	newSession(t, s) // a write, so the WAL file exists
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if m := perm(t, p); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
		}
	}
}

func TestOpenFixesFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	newSession(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing removed the WAL file: leave an empty one, as a crash or another
	// tool might, and loosen both modes.
	if err := os.WriteFile(path+"-wal", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	openAt(t, path)
	for _, p := range []string{path, path + "-wal"} {
		if m := perm(t, p); m != 0o600 {
			t.Errorf("%s: mode %o after reopen, want 600", filepath.Base(p), m)
		}
	}
}

func TestOpenRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere.db")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "state.db")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(testCtx(t), link); err == nil {
		s.Close()
		t.Fatal("Open followed a symlink")
	}
	if m := perm(t, target); m != 0o644 {
		t.Errorf("symlink target's mode changed to %o", m)
	}
}

func TestOpenPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b=c#d %25 e&f")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state.db")
	s := openAt(t, path)
	newSession(t, s)
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("the database is not at the path given: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("Open created %d entries beside the database directory, want only it", len(entries))
	}
}

func TestOpenSettings(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	for _, db := range []struct {
		name string
		q    querier
	}{{"writer", s.w}, {"reader", s.r}} {
		var mode string
		if err := db.q.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("%s: journal_mode = %q, %v; want wal", db.name, mode, err)
		}
		var sync, fk int
		if err := db.q.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
			t.Errorf("%s: synchronous = %d, %v; want 2 (FULL)", db.name, sync, err)
		}
		if err := db.q.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
			t.Errorf("%s: foreign_keys = %d, %v; want 1", db.name, fk, err)
		}
	}
	if _, err := s.r.ExecContext(ctx, `INSERT INTO sessions (id, uid, pid, transport, created_at, last_seen) VALUES ('x', 0, 0, 't', 1, 1)`); err == nil {
		t.Error("the read pool accepted a write")
	}
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	want, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		s, err := Open(testCtx(t), path)
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		var n, maxV int
		if err := s.r.QueryRowContext(testCtx(t), `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
			t.Fatal(err)
		}
		if n != len(want) || maxV != len(want) {
			t.Errorf("open #%d: %d migrations recorded up to version %d, want %d", i+1, n, maxV, len(want))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(testCtx(t), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 1)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(testCtx(t), path)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database from a newer agentiso")
	}
	if !errdefs.Is(err, errdefs.Unavailable) {
		t.Errorf("Open = %v, want Unavailable", err)
	}
}

func TestLoadMigrations(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("CREATE TABLE t (x INTEGER);")}
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr bool
	}{
		{"good", fstest.MapFS{"migrations/0001_a.sql": sql, "migrations/0002_b.sql": sql}, false},
		{"gap", fstest.MapFS{"migrations/0001_a.sql": sql, "migrations/0003_c.sql": sql}, true},
		{"duplicate", fstest.MapFS{"migrations/0001_a.sql": sql, "migrations/0001_b.sql": sql}, true},
		{"not from one", fstest.MapFS{"migrations/0002_a.sql": sql}, true},
		{"no name", fstest.MapFS{"migrations/0001.sql": sql}, true},
		{"bad number", fstest.MapFS{"migrations/one_a.sql": sql}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadMigrations(tt.files)
			if (err != nil) != tt.wantErr {
				t.Errorf("loadMigrations = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	if _, err := loadMigrations(migrationFiles); err != nil {
		t.Errorf("the embedded migrations: %v", err)
	}
}

func TestTxRollsBackOnError(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx *Tx) error {
		if _, err := tx.CreateSession(ctx, Session{Transport: "stdio"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want the callback's error", err)
	}
	if got, err := s.ListSessions(ctx, SessionFilter{}); err != nil || len(got) != 0 {
		t.Errorf("after rollback: %d sessions, %v; want none", len(got), err)
	}
}

func TestTxRollsBackOnPanic(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not propagate")
			}
		}()
		_ = s.Tx(ctx, func(tx *Tx) error {
			if _, err := tx.CreateSession(ctx, Session{Transport: "stdio"}); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if got, err := s.ListSessions(ctx, SessionFilter{}); err != nil || len(got) != 0 {
		t.Errorf("after panic: %d sessions, %v; want none", len(got), err)
	}
	// The writer connection was released: another write goes through.
	newSession(t, s)
}

func TestTxHonoursContext(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	err := s.Tx(ctx, func(tx *Tx) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Tx with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: never cut inside it
		{"日本", 4, "日"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
