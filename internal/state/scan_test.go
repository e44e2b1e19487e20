package state

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
)

func TestScanRows(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	query := `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT i FROM n WHERE i <= ?`
	scanInt := func(r scanner) (i int, err error) {
		err = r.Scan(&i)
		return i, err
	}

	rows, err := s.r.QueryContext(ctx, query, 5)
	if err != nil {
		t.Fatal(err)
	}
	got, err := scanRows(rows, "number", scanInt)
	if err != nil || !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("scanRows = %v, %v", got, err)
	}
	if rows.Next() || rows.Err() != nil {
		t.Error("the rows were left open")
	}

	rows, err = s.r.QueryContext(ctx, query, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := scanRows(rows, "number", scanInt); got != nil || err != nil {
		t.Errorf("no rows: %v, %v; want nil, nil", got, err)
	}

	// A scan error ends the read, names what was read and closes the rows.
	bad := errors.New("bad row")
	rows, err = s.r.QueryContext(ctx, query, 5)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	got, err = scanRows(rows, "number", func(r scanner) (int, error) {
		calls++
		i, err := scanInt(r)
		if i == 2 {
			return 0, bad
		}
		return i, err
	})
	if got != nil || !errors.Is(err, bad) || err.Error() != "reading number: bad row" || calls != 2 {
		t.Errorf("scan error: %v, %v after %d calls", got, err, calls)
	}
	if rows.Next() {
		t.Error("the rows were left open after a scan error")
	}
}

func TestScanRow(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	scanInt := func(r scanner) (i int, err error) {
		err = r.Scan(&i)
		return i, err
	}
	notFound := errdefs.NotFoundf("n: no such number")
	if got, err := scanRow(s.r.QueryRowContext(ctx, `SELECT 7`), "number", notFound, scanInt); got != 7 || err != nil {
		t.Errorf("one row: %v, %v", got, err)
	}
	if _, err := scanRow(s.r.QueryRowContext(ctx, `SELECT 7 WHERE 0`), "number", notFound, scanInt); err != notFound {
		t.Errorf("no row: %v, want the not-found error", err)
	}
	_, err := scanRow(s.r.QueryRowContext(ctx, `SELECT 'x'`), "number", notFound, scanInt)
	if err == nil || errdefs.Is(err, errdefs.NotFound) || !strings.HasPrefix(err.Error(), "reading number: ") {
		t.Errorf("bad row: %v, want a reading error", err)
	}
}
