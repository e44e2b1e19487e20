package state

import (
	"database/sql"
	"errors"
	"fmt"
)

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanRow reads the one row of a QueryRow with scan. No row is notFound;
// another error is wrapped as "reading <what>".
func scanRow[T any](row *sql.Row, what string, notFound error, scan func(scanner) (T, error)) (T, error) {
	v, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		var zero T
		return zero, notFound
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("reading %s: %w", what, err)
	}
	return v, nil
}

// scanRows reads every row of rows with scan and closes rows. An error, of
// scan or of the rows themselves (a query that failed midway), ends the
// read and is wrapped as "reading <what>". With no row it returns nil.
func scanRows[T any](rows *sql.Rows, what string, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	return out, nil
}
