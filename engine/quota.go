package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// ErrQuotaExceeded reports a change refused because a tenant's quota is
// reached; the message names the quota. Quotas are checked inside the
// state machine, so they hold exactly however many nodes and clients
// propose at once.
var ErrQuotaExceeded = errors.New("quota exceeded")

func quotaError(name string, limit int64, why string) error {
	return fmt.Errorf("%w: %s = %d (%s)", ErrQuotaExceeded, name, limit, why)
}

// settingUsage is the settings key of a tenant's stored bytes: outputs
// and modules.
func settingUsage(tenant string) string { return "usage:" + tenant }

// quota returns the tenant's quota; a tenant without one (or unknown)
// has none.
func (a *applier) quota(tenant string) (storage.Quota, error) {
	t, err := a.tx.GetTenant(a.ctx, tenant)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Quota{}, nil
	}
	if err != nil {
		return storage.Quota{}, err
	}
	return t.Quota, nil
}

// checkNewWorkflow refuses a workflow id the tenant does not have yet
// when it has max_workflows already.
func (a *applier) checkNewWorkflow(tenant, id string) (refusal, err error) {
	q, err := a.quota(tenant)
	if err != nil || q.MaxWorkflows <= 0 {
		return nil, err
	}
	if _, err := a.tx.GetWorkflow(a.ctx, tenant, id, 0); err == nil {
		return nil, nil // a new version of a workflow it has
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	n, err := a.tx.CountWorkflows(a.ctx, tenant, int(q.MaxWorkflows))
	if err != nil || int64(n) < q.MaxWorkflows {
		return nil, err
	}
	return quotaError("max_workflows", q.MaxWorkflows, fmt.Sprintf("the tenant has %d workflows", n)), nil
}

// checkNewExecution refuses a new execution when the tenant has
// max_concurrent_executions unfinished, started max_executions_per_hour in
// the hour before the entry's time, or stores max_storage_mb. A start
// repeated with its idempotency key gets the execution it made before,
// quota or not; that is looked up only when a quota applies, since
// CreateExecution looks it up anyway.
func (a *applier) checkNewExecution(exec *storage.Execution) (refusal, err error) {
	tenant := exec.TenantID
	q, err := a.quota(tenant)
	if err != nil || q.MaxConcurrentExecutions <= 0 && q.MaxExecutionsPerHour <= 0 && q.MaxStorageMB <= 0 {
		return nil, err
	}
	if exec.IdempotencyKey != "" {
		_, err := a.tx.ExecutionByKey(a.ctx, tenant, exec.WorkflowID, exec.IdempotencyKey)
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
	}
	if q.MaxConcurrentExecutions > 0 {
		n, err := a.tx.CountActiveExecutions(a.ctx, tenant, int(q.MaxConcurrentExecutions))
		if err != nil {
			return nil, err
		}
		if int64(n) >= q.MaxConcurrentExecutions {
			return quotaError("max_concurrent_executions", q.MaxConcurrentExecutions, fmt.Sprintf("%d executions are unfinished", n)), nil
		}
	}
	if q.MaxExecutionsPerHour > 0 {
		// The window slides on the leader's time carried by the entry.
		at, ok, err := a.tx.NthRecentExecution(a.ctx, tenant, int(q.MaxExecutionsPerHour))
		if err != nil {
			return nil, err
		}
		if ok && a.st.Now.Sub(at) < time.Hour {
			return quotaError("max_executions_per_hour", q.MaxExecutionsPerHour,
				fmt.Sprintf("as many started since %s", at.UTC().Format(time.RFC3339))), nil
		}
	}
	return a.checkStorage(tenant, q)
}

// checkStorage refuses new work once the tenant stores max_storage_mb.
func (a *applier) checkStorage(tenant string, q storage.Quota) (refusal, err error) {
	if q.MaxStorageMB <= 0 {
		return nil, nil
	}
	used, err := a.tx.Setting(a.ctx, settingUsage(tenant), 0)
	if err != nil {
		return nil, err
	}
	if used >= q.MaxStorageMB<<20 {
		return quotaError("max_storage_mb", q.MaxStorageMB, fmt.Sprintf("%d bytes of outputs and modules stored", used)), nil
	}
	return nil, nil
}

// trackUsage starts counting a tenant's stored bytes when it gets a
// storage quota: what it stores already is summed once, then each output
// and module adds to it. Tenants without one cost nothing on the hot path
// but a lookup.
func (a *applier) trackUsage(tenant string, q storage.Quota) error {
	if q.MaxStorageMB <= 0 {
		return nil
	}
	if used, err := a.tx.Setting(a.ctx, settingUsage(tenant), -1); err != nil || used >= 0 {
		return err
	}
	used, err := a.tx.StoredBytes(a.ctx, tenant)
	if err != nil {
		return err
	}
	return a.tx.PutSetting(a.ctx, settingUsage(tenant), used)
}

// addUsage counts n more stored bytes for a tenant whose usage is
// tracked.
func (a *applier) addUsage(tenant string, n int64) error {
	if n <= 0 {
		return nil
	}
	used, err := a.tx.Setting(a.ctx, settingUsage(tenant), -1)
	if err != nil || used < 0 {
		return err
	}
	return a.tx.PutSetting(a.ctx, settingUsage(tenant), used+n)
}

// storedSize is what an output takes: a blob marker counts its content.
func storedSize(out json.RawMessage) int64 {
	if _, ok := markerRef(out); ok {
		var m blobMarker
		if json.Unmarshal(out, &m) == nil {
			return int64(m.Size)
		}
	}
	return int64(len(out))
}
