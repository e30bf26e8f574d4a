package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nebula-engine/nebula/internal/ids"
	"github.com/nebula-engine/nebula/storage"
)

// triggerIndex maps each tenant's workflows to their triggers, built from
// the stored tenants and definitions and rebuilt when a workflow or tenant
// change was applied on this node (definitions are parsed once per
// version).
type triggerIndex struct {
	mu     sync.Mutex
	built  bool
	gen    uint64                // workflows generation it was built at
	hooks  map[string]hookTarget // tenant + "\x00" + path
	crons  []cronTrigger
	parsed map[string]*Definition // tenant/id/version
}

type hookTarget struct {
	workflowID string
	wait       time.Duration
}

type cronTrigger struct {
	tenant, workflowID string
	index              int
	schedule           *Schedule
}

func normalizeHookPath(p string) string { return strings.Trim(p, "/") }

// triggers returns the index, rebuilt when a workflow changed since.
func (s *Service) triggers(ctx context.Context) (*triggerIndex, error) {
	ix := &s.trig
	ix.mu.Lock()
	defer ix.mu.Unlock()
	// Read the generation before the store: a change applied during the
	// build makes the next call build again.
	gen := s.hub.WorkflowsGeneration()
	if ix.built && ix.gen == gen {
		return ix, nil
	}
	if ix.parsed == nil {
		ix.parsed = make(map[string]*Definition)
	}
	hooks := make(map[string]hookTarget)
	var crons []cronTrigger
	tenants, err := s.allTenants(ctx)
	if err != nil {
		return nil, err
	}
	for _, tenant := range tenants {
		page := storage.Page{Limit: 1000}
		for {
			wfs, next, err := s.store.ListWorkflows(ctx, tenant, page)
			if err != nil {
				return nil, err
			}
			for _, wf := range wfs {
				key := fmt.Sprintf("%s/%s/%d", tenant, wf.ID, wf.Version)
				def := ix.parsed[key]
				if def == nil {
					if def, err = ParseDefinition(wf.Definition); err != nil {
						continue // stored definitions parsed when saved
					}
					ix.parsed[key] = def
				}
				for i, tr := range def.Triggers {
					switch tr.Type {
					case "webhook":
						k := tenant + "\x00" + normalizeHookPath(tr.Path)
						if _, taken := hooks[k]; !taken { // by id order: the first wins
							hooks[k] = hookTarget{workflowID: wf.ID, wait: webhookWait(def, tr)}
						}
					case "cron":
						if sch, err := ParseSchedule(tr.Schedule); err == nil {
							crons = append(crons, cronTrigger{tenant: tenant, workflowID: wf.ID, index: i, schedule: sch})
						}
					}
				}
			}
			if next == "" {
				break
			}
			page.Cursor = next
		}
	}
	ix.hooks, ix.crons, ix.built, ix.gen = hooks, crons, true, gen
	return ix, nil
}

// allTenants returns the id of every tenant in the store.
func (s *Service) allTenants(ctx context.Context) ([]string, error) {
	var ids []string
	page := storage.Page{Limit: 1000}
	for {
		list, next, err := s.store.ListTenants(ctx, page)
		if err != nil {
			return nil, err
		}
		for _, t := range list {
			ids = append(ids, t.ID)
		}
		if next == "" {
			return ids, nil
		}
		page.Cursor = next
	}
}

// webhookWait is how long a webhook trigger holds its caller: its own wait,
// else the workflow's timeout, never more than MaxWebhookWait.
func webhookWait(def *Definition, tr Trigger) time.Duration {
	if tr.Wait != nil {
		return min(time.Duration(*tr.Wait), MaxWebhookWait)
	}
	if def.Timeout > 0 {
		return min(time.Duration(def.Timeout), MaxWebhookWait)
	}
	return MaxWebhookWait
}

// ErrNoWebhook reports that no workflow has a webhook trigger with a path.
var ErrNoWebhook = fmt.Errorf("no webhook: %w", storage.ErrNotFound)

// Webhook starts the workflow whose webhook trigger has path, with input
// built from the request, and waits for it up to the workflow's timeout
// (30s when it has none). It returns the execution as it is then.
func (s *Service) Webhook(ctx context.Context, tenant, path string, input json.RawMessage) (*storage.Execution, error) {
	ix, err := s.triggers(ctx)
	if err != nil {
		return nil, err
	}
	ix.mu.Lock()
	target, ok := ix.hooks[tenant+"\x00"+normalizeHookPath(path)]
	ix.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w for path %q", ErrNoWebhook, "/"+normalizeHookPath(path))
	}
	e, _, err := s.StartExecution(ctx, StartRequest{Tenant: tenant, WorkflowID: target.workflowID, Input: input})
	if err != nil || target.wait == 0 {
		return e, err
	}
	return s.Await(ctx, e, target.wait)
}

// RunCron fires cron triggers while this node leads, until ctx ends. Ticks
// are computed from now when it starts leading: ticks missed while no
// leader ran are skipped, not replayed in a burst. Each tick is proposed
// with its time; the state machine refuses a tick already fired, so a new
// leader re-proposing one is harmless.
func (s *Service) RunCron(ctx context.Context, leading func() bool) {
	const idle = time.Second
	next := map[string]time.Time{} // by tenant/workflow/trigger
	wasLeading := false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !leading() {
			wasLeading = false
			t.Reset(idle)
			continue
		}
		if !wasLeading {
			clear(next) // start from now
			wasLeading = true
		}
		ix, err := s.triggers(ctx)
		if err != nil {
			t.Reset(idle)
			continue
		}
		now := time.Now()
		wait := idle
		seen := map[string]bool{}
		for _, c := range ix.crons {
			key := fmt.Sprintf("%s/%s/%d", c.tenant, c.workflowID, c.index)
			seen[key] = true
			tick, ok := next[key]
			if !ok {
				tick = c.schedule.Next(now)
			}
			if tick.IsZero() {
				continue
			}
			if !tick.After(now) {
				_, err := s.submit(ctx, &FireCron{Tenant: c.tenant, WorkflowID: c.workflowID, Trigger: c.index, Tick: tick, ExecutionID: ids.New()})
				if err != nil && !errors.Is(err, storage.ErrConflict) {
					if ctx.Err() == nil {
						s.logger.Warn("cron tick failed", "workflow", c.workflowID, "tick", tick, "err", err)
					}
					wait = 50 * time.Millisecond
					continue // try the same tick again
				}
				tick = c.schedule.Next(now) // the next one from now: no burst
			}
			next[key] = tick
			wait = min(wait, time.Until(tick))
		}
		for key := range next {
			if !seen[key] {
				delete(next, key)
			}
		}
		t.Reset(max(wait, time.Millisecond))
	}
}
