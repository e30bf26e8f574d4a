package sqlite

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/nebula-engine/nebula/storage"
)

// unixNano encodes t for an INTEGER column. The zero time is 0 so that "not
// yet" survives the round trip; the price is that the instant 1970-01-01
// 00:00:00 UTC itself cannot be stored, which no record needs.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano decodes a column written by unixNano, always in UTC so that
// every replica returns identical values.
func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// limitArg turns a caller's limit into a LIMIT argument: SQLite reads a
// negative LIMIT as "no limit".
func limitArg(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

// pageLimitArg is limitArg for paged lists: one row more than the page, to
// learn whether another page follows without a second query.
func pageLimitArg(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit + 1
}

// encodeCursor makes the cursor that resumes a list after key. Cursors are
// base64 so that callers treat them as opaque tokens rather than ids they
// could build themselves.
func encodeCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// decodeCursor returns the key in c; a malformed cursor is
// storage.ErrInvalidCursor.
func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("%w %q", storage.ErrInvalidCursor, c)
	}
	return string(b), nil
}

func encodeSeqCursor(seq int64) string {
	return encodeCursor(strconv.FormatInt(seq, 10))
}

func decodeSeqCursor(c string) (int64, error) {
	s, err := decodeCursor(c)
	if err != nil {
		return 0, err
	}
	seq, err := strconv.ParseInt(s, 10, 64)
	if err != nil || seq <= 0 {
		return 0, fmt.Errorf("%w %q", storage.ErrInvalidCursor, c)
	}
	return seq, nil
}

// constraint classifies a constraint violation reported by SQLite, so that
// callers can translate it into the storage sentinel it stands for.
type constraint int

const (
	notConstraint constraint = iota
	uniqueViolation
	foreignKeyViolation
)

func constraintOf(err error) constraint {
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return notConstraint
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return uniqueViolation
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		// Child rows reference their execution, so this means the
		// execution does not exist for that tenant.
		return foreignKeyViolation
	}
	return notConstraint
}

// scanner is satisfied by *sql.Row and *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}
