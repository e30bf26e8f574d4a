package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations returns the schema changes in order; migration i brings the
// database to version i+1. Entries are append-only: a released migration is
// never edited, because databases (and Raft snapshots) made by older binaries
// must upgrade to exactly the same schema as fresh ones.
//
// Design notes for version 1:
//   - Times are INTEGER unix nanoseconds in UTC, 0 for the zero time, so
//     that they compare as numbers and round-trip exactly.
//   - JSON payloads are BLOBs holding the caller's bytes unchanged; NULL is
//     "none".
//   - Tables that are ordered by creation (executions, tasks) declare an
//     INTEGER PRIMARY KEY: it is assigned deterministically at insert, and
//     unlike an implicit rowid, VACUUM (and so a snapshot) preserves it.
//   - Every tenant-owned table leads with tenant_id; meta and
//     schema_migrations describe the database itself and have none.
func migrations() []string {
	return []string{
		// Version 1.
		`
CREATE TABLE workflows (
	tenant_id  TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	name       TEXT    NOT NULL,
	definition BLOB,
	created_at INTEGER NOT NULL,
	-- latest is 1 on the newest version of (tenant_id, id) only; deleted is
	-- meaningful on that row and hides the whole workflow.
	latest     INTEGER NOT NULL,
	deleted    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, id, version)
) STRICT;

-- Listing walks the latest versions in id order without touching older ones.
CREATE UNIQUE INDEX workflows_latest ON workflows (tenant_id, id) WHERE latest = 1;

CREATE TABLE executions (
	seq              INTEGER PRIMARY KEY,
	tenant_id        TEXT    NOT NULL,
	id               TEXT    NOT NULL,
	workflow_id      TEXT    NOT NULL,
	workflow_version INTEGER NOT NULL,
	status           TEXT    NOT NULL,
	input            BLOB,
	output           BLOB,
	error            TEXT    NOT NULL,
	idempotency_key  TEXT    NOT NULL,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	finished_at      INTEGER NOT NULL,
	UNIQUE (tenant_id, id)
) STRICT;

CREATE UNIQUE INDEX executions_idempotency
	ON executions (tenant_id, workflow_id, idempotency_key) WHERE idempotency_key <> '';
-- An index implicitly ends with the rowid (seq), so each of these also
-- yields its rows in creation order for ListExecutions.
CREATE INDEX executions_tenant ON executions (tenant_id);
CREATE INDEX executions_workflow ON executions (tenant_id, workflow_id);
CREATE INDEX executions_status ON executions (tenant_id, status);

CREATE TABLE nodes (
	tenant_id    TEXT    NOT NULL,
	execution_id TEXT    NOT NULL,
	node_id      TEXT    NOT NULL,
	status       TEXT    NOT NULL,
	attempts     INTEGER NOT NULL,
	output       BLOB,
	error        TEXT    NOT NULL,
	started_at   INTEGER NOT NULL,
	finished_at  INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, execution_id, node_id),
	FOREIGN KEY (tenant_id, execution_id) REFERENCES executions (tenant_id, id)
) STRICT;

CREATE TABLE journal (
	tenant_id       TEXT    NOT NULL,
	execution_id    TEXT    NOT NULL,
	seq             INTEGER NOT NULL,
	type            TEXT    NOT NULL,
	at              INTEGER NOT NULL,
	node            TEXT    NOT NULL,
	attempt         INTEGER NOT NULL,
	idempotency_key TEXT    NOT NULL,
	data            BLOB,
	PRIMARY KEY (tenant_id, execution_id, seq),
	FOREIGN KEY (tenant_id, execution_id) REFERENCES executions (tenant_id, id)
) STRICT;

CREATE TABLE tasks (
	seq           INTEGER PRIMARY KEY,
	id            TEXT    NOT NULL UNIQUE,
	tenant_id     TEXT    NOT NULL,
	execution_id  TEXT    NOT NULL,
	node          TEXT    NOT NULL,
	attempt       INTEGER NOT NULL,
	action        TEXT    NOT NULL,
	params        BLOB,
	created_at    INTEGER NOT NULL,
	-- A task is leased exactly when lease_token <> 0: tokens are never 0.
	lease_holder  TEXT    NOT NULL DEFAULT '',
	lease_token   INTEGER NOT NULL DEFAULT 0,
	lease_expires INTEGER NOT NULL DEFAULT 0,
	FOREIGN KEY (tenant_id, execution_id) REFERENCES executions (tenant_id, id)
) STRICT;

-- ReadyTasks: unleased tasks in creation (rowid) order.
CREATE INDEX tasks_ready ON tasks (lease_token) WHERE lease_token = 0;
-- FindStaleLeases: leased tasks by expiry, rowid as the tiebreak.
CREATE INDEX tasks_expiry ON tasks (lease_expires) WHERE lease_token <> 0;
CREATE INDEX tasks_execution ON tasks (tenant_id, execution_id);

CREATE TABLE credentials (
	tenant_id  TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	type       TEXT    NOT NULL,
	data       BLOB,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, name)
) STRICT;

CREATE TABLE meta (
	key   TEXT    NOT NULL PRIMARY KEY,
	value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`,
		// Version 2: subworkflows, task timeouts and durable timers.
		`
ALTER TABLE executions ADD COLUMN parent_id   TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN parent_node TEXT NOT NULL DEFAULT '';

-- ChildExecutions, in creation (rowid) order. Partial, because most
-- executions are top-level and would only make the index bigger.
CREATE INDEX executions_parent ON executions (tenant_id, parent_id) WHERE parent_id <> '';
-- PendingExecutions and CountExecutions look across tenants, which
-- executions_status (led by tenant_id) cannot serve.
CREATE INDEX executions_by_status ON executions (status);

-- Nanoseconds; 0 leaves the choice to the worker.
ALTER TABLE tasks ADD COLUMN timeout INTEGER NOT NULL DEFAULT 0;

-- Timers are only ever ordered by (due_at, id), never by insertion, so
-- the table needs no seq; WITHOUT ROWID leaves no hidden rowid either,
-- and the rows are exactly their columns on every replica and after a
-- VACUUM.
CREATE TABLE timers (
	tenant_id    TEXT    NOT NULL,
	id           TEXT    NOT NULL PRIMARY KEY,
	execution_id TEXT    NOT NULL,
	node         TEXT    NOT NULL,
	attempt      INTEGER NOT NULL,
	kind         TEXT    NOT NULL,
	due_at       INTEGER NOT NULL,
	FOREIGN KEY (tenant_id, execution_id) REFERENCES executions (tenant_id, id)
) STRICT, WITHOUT ROWID;

-- DueTimers and NextTimer walk this index in order.
CREATE INDEX timers_due ON timers (due_at, id);
CREATE INDEX timers_execution ON timers (tenant_id, execution_id);
`,
		// Version 3: the registry of community actions.
		`
-- One row per (tenant, action, version); versions are immutable. The
-- module itself is in the blob store under module_ref. capabilities is a
-- JSON array of strings. WITHOUT ROWID: rows are only ever read by key or
-- in key order.
CREATE TABLE actions (
	tenant_id    TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	version      TEXT    NOT NULL,
	capabilities BLOB    NOT NULL,
	module_ref   TEXT    NOT NULL,
	size         INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, id, version)
) STRICT, WITHOUT ROWID;
`,
		// Version 4: tenants and their tokens.
		`
-- Quotas are four INTEGER columns, 0 meaning unlimited. The tenant
-- "default" exists from the start (created_at 0, no quota), so that
-- every store, fresh or upgraded, holds the tenant that requests act for
-- when auth is off; the row is the same on every replica.
CREATE TABLE tenants (
	id                        TEXT    NOT NULL PRIMARY KEY,
	name                      TEXT    NOT NULL,
	max_workflows             INTEGER NOT NULL,
	max_concurrent_executions INTEGER NOT NULL,
	max_executions_per_hour   INTEGER NOT NULL,
	max_storage_mb            INTEGER NOT NULL,
	created_at                INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO tenants VALUES ('default', 'default', 0, 0, 0, 0, 0);

-- Only the hex SHA-256 of a token is kept. revoked_at is 0 while the
-- token is active.
CREATE TABLE tokens (
	tenant_id  TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	hash       TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id) REFERENCES tenants (id)
) STRICT, WITHOUT ROWID;

-- Every authenticated request looks its token up by hash.
CREATE UNIQUE INDEX tokens_hash ON tokens (hash);
-- ListTokens, in creation order.
CREATE INDEX tokens_tenant ON tokens (tenant_id, created_at, id);
`,
		// Version 5: node states and journal rows are only ever found by
		// their primary key, so they become WITHOUT ROWID tables: each row
		// is one b-tree entry instead of a table row plus an index entry,
		// which halves the writes of the hottest tables.
		`
CREATE TABLE nodes_v5 (
	tenant_id    TEXT    NOT NULL,
	execution_id TEXT    NOT NULL,
	node_id      TEXT    NOT NULL,
	status       TEXT    NOT NULL,
	attempts     INTEGER NOT NULL,
	output       BLOB,
	error        TEXT    NOT NULL,
	started_at   INTEGER NOT NULL,
	finished_at  INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, execution_id, node_id),
	FOREIGN KEY (tenant_id, execution_id) REFERENCES executions (tenant_id, id)
) STRICT, WITHOUT ROWID;
INSERT INTO nodes_v5 SELECT tenant_id, execution_id, node_id, status, attempts, output, error, started_at, finished_at
	FROM nodes ORDER BY tenant_id, execution_id, node_id;
DROP TABLE nodes;
ALTER TABLE nodes_v5 RENAME TO nodes;

CREATE TABLE journal_v5 (
	tenant_id       TEXT    NOT NULL,
	execution_id    TEXT    NOT NULL,
	seq             INTEGER NOT NULL,
	type            TEXT    NOT NULL,
	at              INTEGER NOT NULL,
	node            TEXT    NOT NULL,
	attempt         INTEGER NOT NULL,
	idempotency_key TEXT    NOT NULL,
	data            BLOB,
	PRIMARY KEY (tenant_id, execution_id, seq),
	FOREIGN KEY (tenant_id, execution_id) REFERENCES executions (tenant_id, id)
) STRICT, WITHOUT ROWID;
INSERT INTO journal_v5 SELECT tenant_id, execution_id, seq, type, at, node, attempt, idempotency_key, data
	FROM journal ORDER BY tenant_id, execution_id, seq;
DROP TABLE journal;
ALTER TABLE journal_v5 RENAME TO journal;
`,
		// Version 6: a journal row holds a run of consecutive entries of
		// one execution (see journal.go): the first in the existing
		// columns, the rest packed in more. Existing rows are runs of one.
		`
ALTER TABLE journal ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE journal ADD COLUMN more BLOB;
UPDATE journal SET last_seq = seq;
`,
		// Version 7: executions whose work a log entry left for a later
		// one (the state machine bounds the work of each entry).
		`
CREATE TABLE deferred (
	tenant_id    TEXT    NOT NULL,
	seq          INTEGER NOT NULL,
	execution_id TEXT    NOT NULL,
	PRIMARY KEY (tenant_id, seq, execution_id),
	FOREIGN KEY (tenant_id, execution_id) REFERENCES executions (tenant_id, id)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX deferred_execution ON deferred (tenant_id, execution_id);
`,
	}
}

// createSchemaMigrations makes the table that records which migrations a
// database has had.
const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY) STRICT`

// migrate brings the database behind db to the newest schema in one
// transaction, and refuses a database made by a newer binary rather than
// guess at a schema it does not know.
func migrate(ctx context.Context, db *sql.DB) (from, to int, err error) {
	all := migrations()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, createSchemaMigrations); err != nil {
		return 0, 0, fmt.Errorf("sqlite: migrate: %w", err)
	}
	current, err := schemaVersion(ctx, tx)
	if err != nil {
		return 0, 0, err
	}
	if current > len(all) {
		return current, current, fmt.Errorf("sqlite: database schema version %d is newer than this binary supports (%d)", current, len(all))
	}
	for v := current + 1; v <= len(all); v++ {
		if _, err := tx.ExecContext(ctx, all[v-1]); err != nil {
			return current, current, fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, v); err != nil {
			return current, current, fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return current, current, fmt.Errorf("sqlite: migrate: %w", err)
	}
	return current, len(all), nil
}

// querier is what schemaVersion needs from a *sql.DB or *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("sqlite: read schema version: %w", err)
	}
	return v, nil
}
