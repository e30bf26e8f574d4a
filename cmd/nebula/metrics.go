package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/nebula-engine/nebula/cluster"
	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/internal/metrics"
	"github.com/nebula-engine/nebula/storage/sqlite"
)

// maxCountedTasks bounds the ready tasks read at each scrape: a deep queue
// shows as this many rather than making every scrape read all of it.
const maxCountedTasks = 10000

// countEvents returns an fsm OnEvents callback that counts the executions
// that start and finish, then hands the applied events to publish. It
// counts first so that whoever publish wakes (a request waiting for its
// execution) already finds the execution counted. It runs on the apply
// path, like publish, and does not block.
func countEvents(m *metrics.Metrics, publish func([]engine.Event)) func([]engine.Event) {
	return func(events []engine.Event) {
		for _, ev := range events {
			switch ev.Kind {
			case engine.EventExecutionStarted:
				m.ExecutionStarted()
			case engine.EventExecutionFinished:
				m.ExecutionFinished(ev.Status)
			}
		}
		publish(events)
	}
}

// watchNode registers the gauges read at each scrape: Raft's view of the
// node and the depth of the queues in its state store.
func watchNode(m *metrics.Metrics, node *cluster.Node, store *sqlite.Store) {
	m.Watch("nebula_raft_state", "Raft state of this node: 0 follower, 1 candidate, 2 leader, 3 shutdown.",
		func() float64 { return float64(node.Metrics().State) })
	m.Watch("nebula_raft_leader", "1 when this node is the Raft leader, else 0.", func() float64 {
		if node.IsLeader() {
			return 1
		}
		return 0
	})
	m.Watch("nebula_raft_term", "Current Raft term.",
		func() float64 { return float64(node.Metrics().Term) })
	m.Watch("nebula_raft_commit_index", "Highest log index this node knows to be committed.",
		func() float64 { return float64(node.Metrics().CommitIndex) })
	m.Watch("nebula_raft_applied_index", "Highest log index applied to this node's state store.",
		func() float64 { return float64(node.Metrics().AppliedIndex) })
	m.Watch("nebula_raft_last_contact_seconds", "Seconds since this follower last heard from the leader: 0 on the leader, +Inf when it never did.", func() float64 {
		if node.IsLeader() {
			return 0
		}
		last := node.Metrics().LastContact
		if last.IsZero() {
			return math.Inf(1)
		}
		return time.Since(last).Seconds()
	})
	m.Watch("nebula_deferred_executions", "Executions with work left for a later log entry (see engine.Budget).", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := store.CountDeferred(ctx)
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	})
	m.Watch("nebula_queue_ready_tasks", fmt.Sprintf("Tasks waiting for a worker, counted up to %d.", maxCountedTasks), func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		tasks, err := store.ReadyTasks(ctx, maxCountedTasks)
		if err != nil {
			return math.NaN()
		}
		return float64(len(tasks))
	})
	m.Watch("nebula_executions_pending", "Executions waiting for a slot under engine.max_concurrent_executions.", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := store.CountExecutions(ctx, string(engine.StatusPending))
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	})
}
