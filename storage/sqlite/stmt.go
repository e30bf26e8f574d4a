package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// stmtID names one of the statements a Store prepares once per connection
// pool and every transaction reuses, so the hot path never parses SQL.
type stmtID int

const (
	stmtWorkflowRetire stmtID = iota
	stmtWorkflowInsert
	stmtWorkflowLatest
	stmtWorkflowLive
	stmtWorkflowVersion
	stmtWorkflowDelete
	stmtWorkflowList
	stmtWorkflowListAfter

	stmtExecutionInsert
	stmtExecutionGet
	stmtExecutionByKey
	stmtExecutionExists
	stmtExecutionTransition
	stmtExecutionTransitionUpdate
	// The four list statements are indexed by listExecutionsStmt.
	stmtExecutionList
	stmtExecutionListWorkflow
	stmtExecutionListStatus
	stmtExecutionListWorkflowStatus
	stmtExecutionChildren
	stmtExecutionPending
	stmtExecutionCount
	stmtExecutionCountActive
	stmtExecutionNthRecent
	stmtStoredBytes
	stmtWorkflowCount

	stmtNodePut
	stmtNodeList

	stmtJournalRead

	stmtTaskInsert
	stmtTaskGet
	stmtTaskReady
	stmtTaskAcquire
	stmtTaskRenew
	stmtTaskStale
	stmtTaskLeased
	stmtTaskDelete
	stmtTaskDeleteToken
	stmtTaskDeleteExecution

	stmtDeferInsert
	stmtDeferList
	stmtDeferDelete
	stmtDeferCount

	stmtTimerInsert
	stmtTimerDue
	stmtTimerNext
	stmtTimerDelete
	stmtTimerDeleteExecution

	stmtCredentialPut
	stmtCredentialGet
	stmtCredentialList
	stmtCredentialListAll
	stmtCredentialDelete

	stmtActionInsert
	stmtActionGet
	stmtActionVersions
	stmtActionList
	stmtActionListAfter

	stmtTenantInsert
	stmtTenantGet
	stmtTenantListAfter
	stmtTenantSetQuota
	stmtTokenInsert
	stmtTokenByHash
	stmtTokenList
	stmtTokenRevoke

	stmtMetaSetApplied
	stmtMetaGetApplied
	stmtSettingPut
	stmtSettingGet

	stmtJournalLastSeq

	// Multi-row writes, flushed by Tx at commit: stmtJournalBatch+k
	// inserts 1<<k journal rows (runs of entries), stmtNodeBatch+k upserts 1<<k node rows.
	stmtJournalBatch
	stmtNodeBatch = stmtJournalBatch + batchKinds
	numStmts      = stmtNodeBatch + batchKinds
)

// batchKinds is the number of multi-row statement sizes: 1, 2, 4 … 64 rows.
const batchKinds = 7

// Column lists shared by the statements and the scan functions that read
// their rows; the two must stay in the same order.
const (
	workflowCols  = `tenant_id, id, version, name, definition, created_at`
	executionCols = `seq, tenant_id, id, workflow_id, workflow_version, status, input, output, error, idempotency_key, parent_id, parent_node, created_at, updated_at, finished_at`
	nodeCols      = `node_id, status, attempts, output, error, started_at, finished_at`
	journalCols   = `seq, type, at, node, attempt, idempotency_key, data`
	taskCols      = `tenant_id, id, execution_id, node, attempt, action, params, timeout, created_at, lease_holder, lease_token, lease_expires`
	timerCols     = `tenant_id, id, execution_id, node, attempt, kind, due_at`
	credCols      = `tenant_id, name, type, data, created_at, updated_at`
	actionCols    = `tenant_id, id, version, capabilities, module_ref, size, created_at`
	tenantCols    = `id, name, max_workflows, max_concurrent_executions, max_executions_per_hour, max_storage_mb, created_at`
	tokenCols     = `tenant_id, id, hash, created_at, revoked_at`
)

// statements returns the SQL of every statement, indexed by stmtID.
//
// Every ORDER BY ends in a unique column so that results, and anything the
// caller derives from them, are the same on every replica.
func statements() [numStmts]string {
	s := [numStmts]string{
		stmtWorkflowRetire: `UPDATE workflows SET latest = 0
			WHERE tenant_id = ? AND id = ? AND latest = 1 RETURNING version`,
		stmtWorkflowInsert: `INSERT INTO workflows (` + workflowCols + `, latest, deleted)
			VALUES (?, ?, ?, ?, ?, ?, 1, 0)`,
		stmtWorkflowLatest: `SELECT ` + workflowCols + ` FROM workflows
			WHERE tenant_id = ? AND id = ? AND latest = 1 AND deleted = 0`,
		stmtWorkflowLive: `SELECT ` + workflowCols + ` FROM workflows
			WHERE tenant_id = ?1 AND id = ?2 AND version = ?3
			AND EXISTS (SELECT 1 FROM workflows WHERE tenant_id = ?1 AND id = ?2 AND latest = 1 AND deleted = 0)`,
		stmtWorkflowVersion: `SELECT ` + workflowCols + ` FROM workflows
			WHERE tenant_id = ? AND id = ? AND version = ?`,
		stmtWorkflowDelete: `UPDATE workflows SET deleted = 1
			WHERE tenant_id = ? AND id = ? AND latest = 1 AND deleted = 0`,
		stmtWorkflowList: `SELECT ` + workflowCols + ` FROM workflows
			WHERE tenant_id = ? AND latest = 1 AND deleted = 0 ORDER BY id LIMIT ?`,
		stmtWorkflowListAfter: `SELECT ` + workflowCols + ` FROM workflows
			WHERE tenant_id = ? AND latest = 1 AND deleted = 0 AND id > ? ORDER BY id LIMIT ?`,

		stmtExecutionInsert: `INSERT INTO executions (tenant_id, id, workflow_id, workflow_version, status,
			input, output, error, idempotency_key, parent_id, parent_node, created_at, updated_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		stmtExecutionGet: `SELECT ` + executionCols + ` FROM executions WHERE tenant_id = ? AND id = ?`,
		// The literal "<> ''" lets the planner use the partial unique index.
		stmtExecutionByKey: `SELECT ` + executionCols + ` FROM executions
			WHERE tenant_id = ? AND workflow_id = ? AND idempotency_key = ? AND idempotency_key <> ''`,
		stmtExecutionExists: `SELECT 1 FROM executions WHERE tenant_id = ? AND id = ?`,
		stmtExecutionTransition: `UPDATE executions SET status = ?, updated_at = ?
			WHERE tenant_id = ? AND id = ? AND status = ?`,
		stmtExecutionTransitionUpdate: `UPDATE executions SET status = ?, updated_at = ?, output = ?, error = ?, finished_at = ?
			WHERE tenant_id = ? AND id = ? AND status = ?`,
		stmtExecutionList:               listExecutionsSQL(false, false),
		stmtExecutionListWorkflow:       listExecutionsSQL(true, false),
		stmtExecutionListStatus:         listExecutionsSQL(false, true),
		stmtExecutionListWorkflowStatus: listExecutionsSQL(true, true),
		// As with stmtExecutionByKey, the literal "<> ''" admits the
		// partial index.
		stmtExecutionChildren: `SELECT ` + executionCols + ` FROM executions
			WHERE tenant_id = ? AND parent_id = ? AND parent_id <> '' ORDER BY seq`,
		stmtExecutionPending: `SELECT ` + executionCols + ` FROM executions
			WHERE status = 'pending' ORDER BY seq LIMIT ?`,
		stmtExecutionCount: `SELECT COUNT(*) FROM executions WHERE status = ?`,
		// Quotas count no further than their bound, so a check costs at
		// most that many index entries whatever the tenant holds.
		stmtExecutionCountActive: `SELECT COUNT(*) FROM (SELECT 1 FROM executions
			WHERE tenant_id = ? AND status IN ('pending', 'running') LIMIT ?)`,
		// A blob marker ({"$nebula_blob": ref, "size": n}) counts the size
		// of what it stands for.
		stmtStoredBytes: `SELECT
			(SELECT COALESCE(SUM(CASE WHEN CAST(substr(output, 1, 16) AS TEXT) = '{"$nebula_blob":'
				THEN json_extract(CAST(output AS TEXT), '$.size') ELSE length(output) END), 0)
				FROM nodes WHERE tenant_id = ?1)
			+ (SELECT COALESCE(SUM(size), 0) FROM actions WHERE tenant_id = ?1)`,
		stmtExecutionNthRecent: `SELECT created_at FROM executions WHERE tenant_id = ?
			ORDER BY seq DESC LIMIT 1 OFFSET ?`,
		stmtWorkflowCount: `SELECT COUNT(*) FROM (SELECT 1 FROM workflows
			WHERE tenant_id = ? AND latest = 1 AND deleted = 0 LIMIT ?)`,

		stmtNodePut: `INSERT INTO nodes (tenant_id, execution_id, ` + nodeCols + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, execution_id, node_id) DO UPDATE SET
				status = excluded.status, attempts = excluded.attempts, output = excluded.output,
				error = excluded.error, started_at = excluded.started_at, finished_at = excluded.finished_at`,
		stmtNodeList: `SELECT ` + nodeCols + ` FROM nodes
			WHERE tenant_id = ? AND execution_id = ? ORDER BY node_id`,

		// A row holds entries seq..last_seq (journal.go): the reading
		// starts at the row holding afterSeq+1, found with one seek.
		stmtJournalRead: `SELECT ` + journalCols + `, last_seq, more FROM journal
			WHERE tenant_id = ?1 AND execution_id = ?2 AND seq >= (
				SELECT COALESCE(MAX(seq), 0) FROM journal
				WHERE tenant_id = ?1 AND execution_id = ?2 AND seq <= ?3 + 1)
			ORDER BY seq LIMIT ?4`,

		stmtTaskInsert: `INSERT INTO tasks (tenant_id, id, execution_id, node, attempt, action, params, timeout, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		stmtTaskGet: `SELECT ` + taskCols + ` FROM tasks WHERE id = ?`,
		stmtTaskReady: `SELECT ` + taskCols + ` FROM tasks
			WHERE lease_token = 0 ORDER BY seq LIMIT ?`,
		stmtTaskAcquire: `UPDATE tasks SET lease_holder = ?, lease_token = ?, lease_expires = ?
			WHERE id = ? AND (lease_token = 0 OR lease_expires <= ?)`,
		stmtTaskRenew: `UPDATE tasks SET lease_expires = ?
			WHERE id = ? AND lease_token = ? AND lease_token <> 0`,
		stmtTaskStale: `SELECT ` + taskCols + ` FROM tasks
			WHERE lease_token <> 0 AND lease_expires <= ? ORDER BY lease_expires, seq LIMIT ?`,
		// instr(...) = 1 is a byte-exact prefix test; LIKE would fold case
		// and treat % and _ in holder names as wildcards.
		stmtTaskLeased: `SELECT ` + taskCols + ` FROM tasks
			WHERE lease_token <> 0 AND instr(lease_holder, ?) = 1 ORDER BY id LIMIT ?`,
		stmtTaskDelete:          `DELETE FROM tasks WHERE id = ?`,
		stmtTaskDeleteToken:     `DELETE FROM tasks WHERE id = ? AND lease_token = ?`,
		stmtTaskDeleteExecution: `DELETE FROM tasks WHERE tenant_id = ? AND execution_id = ?`,

		stmtDeferInsert: `INSERT INTO deferred (tenant_id, seq, execution_id) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id, execution_id) DO NOTHING`,
		// Tenants take turns: the n-th oldest of every tenant comes before
		// any tenant's n+1-th. The table holds only executions with work
		// left, so reading all of it is cheap.
		stmtDeferList: `SELECT tenant_id, execution_id, seq FROM (
				SELECT tenant_id, execution_id, seq, ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY seq, execution_id) AS turn
				FROM deferred)
			ORDER BY turn, seq, tenant_id, execution_id LIMIT ?`,
		stmtDeferDelete: `DELETE FROM deferred WHERE tenant_id = ? AND execution_id = ?`,
		stmtDeferCount:  `SELECT count(*) FROM deferred`,

		stmtTimerInsert: `INSERT INTO timers (` + timerCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		stmtTimerDue: `SELECT ` + timerCols + ` FROM timers
			WHERE due_at <= ? ORDER BY due_at, id LIMIT ?`,
		// "ORDER BY due_at, id LIMIT 1" would read the same one row but
		// plans as a SCAN of timers_due; seeking MIN(due_at) first plans
		// as two searches, so TestQueryPlans can hold this statement to
		// the rule that catches real scans.
		stmtTimerNext: `SELECT ` + timerCols + ` FROM timers
			WHERE due_at = (SELECT MIN(due_at) FROM timers) ORDER BY id LIMIT 1`,
		stmtTimerDelete:          `DELETE FROM timers WHERE id = ?`,
		stmtTimerDeleteExecution: `DELETE FROM timers WHERE tenant_id = ? AND execution_id = ?`,

		stmtCredentialPut: `INSERT INTO credentials (` + credCols + `) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, name) DO UPDATE SET
				type = excluded.type, data = excluded.data,
				created_at = excluded.created_at, updated_at = excluded.updated_at`,
		stmtCredentialGet:     `SELECT ` + credCols + ` FROM credentials WHERE tenant_id = ? AND name = ?`,
		stmtCredentialList:    `SELECT ` + credCols + ` FROM credentials WHERE tenant_id = ? ORDER BY name`,
		stmtCredentialDelete:  `DELETE FROM credentials WHERE tenant_id = ? AND name = ?`,
		stmtCredentialListAll: `SELECT ` + credCols + ` FROM credentials ORDER BY tenant_id, name`,

		// DO NOTHING leaves an existing version as it is; PutAction then
		// compares it with the one put.
		stmtActionInsert: `INSERT INTO actions (` + actionCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, id, version) DO NOTHING`,
		stmtActionGet: `SELECT ` + actionCols + ` FROM actions
			WHERE tenant_id = ? AND id = ? AND version = ?`,
		// Precedence is not byte order (1.10.0 > 1.9.0), so "latest" is
		// picked in Go from every version of the action.
		stmtActionVersions: `SELECT ` + actionCols + ` FROM actions
			WHERE tenant_id = ? AND id = ? ORDER BY version`,
		stmtActionList: `SELECT ` + actionCols + ` FROM actions
			WHERE tenant_id = ? ORDER BY id, version LIMIT ?`,
		stmtActionListAfter: `SELECT ` + actionCols + ` FROM actions
			WHERE tenant_id = ?1 AND (id, version) > (?2, ?3) ORDER BY id, version LIMIT ?4`,

		// DO NOTHING: a taken id is reported as a conflict from the
		// count of rows inserted.
		stmtTenantInsert: `INSERT INTO tenants (` + tenantCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`,
		stmtTenantGet: `SELECT ` + tenantCols + ` FROM tenants WHERE id = ?`,
		// The default tenant is read apart and listed first.
		stmtTenantListAfter: `SELECT ` + tenantCols + ` FROM tenants
			WHERE id > ? AND id <> 'default' ORDER BY id LIMIT ?`,
		stmtTenantSetQuota: `UPDATE tenants SET max_workflows = ?, max_concurrent_executions = ?,
			max_executions_per_hour = ?, max_storage_mb = ? WHERE id = ?`,
		// Without a conflict target, DO NOTHING covers both the primary
		// key and the unique hash.
		stmtTokenInsert: `INSERT INTO tokens (` + tokenCols + `) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`,
		stmtTokenByHash: `SELECT k.tenant_id, k.id, k.hash, k.created_at, k.revoked_at,
			t.id, t.name, t.max_workflows, t.max_concurrent_executions, t.max_executions_per_hour, t.max_storage_mb, t.created_at
			FROM tokens k JOIN tenants t ON t.id = k.tenant_id WHERE k.hash = ?`,
		stmtTokenList: `SELECT ` + tokenCols + ` FROM tokens
			WHERE tenant_id = ? ORDER BY created_at, id`,
		// SQLite counts every row the WHERE matched, so a token revoked
		// before still counts as found and keeps its first time.
		stmtTokenRevoke: `UPDATE tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END
			WHERE tenant_id = ? AND id = ?`,

		stmtMetaSetApplied: `INSERT INTO meta (key, value) VALUES ('applied_index', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		stmtMetaGetApplied: `SELECT value FROM meta WHERE key = 'applied_index'`,
		// Settings share the meta table under a "setting:" prefix, apart
		// from the store's own keys.
		stmtSettingPut: `INSERT INTO meta (key, value) VALUES ('setting:' || ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		stmtSettingGet: `SELECT value FROM meta WHERE key = 'setting:' || ?`,

		stmtJournalLastSeq: `SELECT COALESCE((SELECT last_seq FROM journal WHERE tenant_id = ? AND execution_id = ?
			ORDER BY seq DESC LIMIT 1), 0)`,
	}
	for k := range batchKinds {
		n := 1 << k
		s[stmtJournalBatch+stmtID(k)] = `INSERT INTO journal (tenant_id, execution_id, ` + journalCols + `, last_seq, more)
			VALUES ` + placeholders(n, 11)
		s[stmtNodeBatch+stmtID(k)] = `INSERT INTO nodes (tenant_id, execution_id, ` + nodeCols + `)
			VALUES ` + placeholders(n, 9) + `
			ON CONFLICT (tenant_id, execution_id, node_id) DO UPDATE SET
				status = excluded.status, attempts = excluded.attempts, output = excluded.output,
				error = excluded.error, started_at = excluded.started_at, finished_at = excluded.finished_at`
	}
	return s
}

// placeholders returns rows groups of cols "?" each: "(?, ?), (?, ?)".
func placeholders(rows, cols int) string {
	row := "(" + strings.Repeat("?, ", cols-1) + "?)"
	return strings.Repeat(row+", ", rows-1) + row
}

// listExecutionsSQL builds one of the four ListExecutions statements. Each
// combination of filters is a statement of its own, rather than one with
// optional terms such as "(?1 IS NULL OR col = ?1)", so that the planner can
// pick the matching index.
func listExecutionsSQL(byWorkflow, byStatus bool) string {
	q := `SELECT ` + executionCols + ` FROM executions WHERE tenant_id = ?`
	if byWorkflow {
		q += ` AND workflow_id = ?`
	}
	if byStatus {
		q += ` AND status = ?`
	}
	return q + ` AND seq > ? ORDER BY seq LIMIT ?`
}

// listExecutionsStmt picks the list statement for a filter.
func listExecutionsStmt(byWorkflow, byStatus bool) stmtID {
	id := stmtExecutionList
	if byWorkflow {
		id++
	}
	if byStatus {
		id += 2
	}
	return id
}

// stmts holds the statements prepared on one *sql.DB.
type stmts [numStmts]*sql.Stmt

func prepare(ctx context.Context, db *sql.DB) (*stmts, error) {
	var s stmts
	for id, q := range statements() {
		p, err := db.PrepareContext(ctx, q)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("sqlite: prepare statement %d: %w", id, err)
		}
		s[id] = p
	}
	return &s, nil
}

func (s *stmts) close() error {
	var errs []error
	for _, p := range s {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	return errors.Join(errs...)
}
