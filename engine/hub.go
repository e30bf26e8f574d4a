package engine

import (
	"sync"
	"sync/atomic"
)

// Hub fans applied events out to waiters: API requests waiting for an
// execution, and workers waiting for tasks. Signals coalesce: a waiter
// learns that something changed and reads the store to see what.
type Hub struct {
	mu       sync.Mutex
	watchers map[string]map[chan struct{}]bool // by execution id; true: only its end
	finished map[chan string]struct{}          // ids of executions that ended
	tasks    map[chan struct{}]struct{}        // one per waiter for tasks
	timers   chan struct{}
	deferred chan struct{}
	// workflows counts applied workflow and tenant changes, so that
	// caches of definitions (the trigger index) know when to rebuild.
	workflows atomic.Uint64
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	return &Hub{
		watchers: make(map[string]map[chan struct{}]bool),
		finished: make(map[chan string]struct{}),
		tasks:    make(map[chan struct{}]struct{}),
		timers:   make(chan struct{}, 1),
		deferred: make(chan struct{}, 1),
	}
}

// Publish delivers events. It never blocks, so the apply path can call it.
func (h *Hub) Publish(events []Event) {
	tasks, timers, deferred := false, false, false
	h.mu.Lock()
	for _, ev := range events {
		switch ev.Kind {
		case EventTasksReady:
			tasks = true
		case EventTimersChanged:
			timers = true
		case EventDeferred:
			deferred = true
		case EventWorkflowsChanged, EventTenantsChanged:
			h.workflows.Add(1)
		case EventExecutionFinished:
			for ch := range h.finished {
				// A full channel drops the news; its worker still learns
				// from its next heartbeat that the lease is gone.
				select {
				case ch <- ev.ExecutionID:
				default:
				}
			}
		}
		for ch, endOnly := range h.watchers[ev.ExecutionID] {
			if !endOnly || ev.Kind == EventExecutionFinished {
				notify(ch)
			}
		}
	}
	if tasks {
		for ch := range h.tasks {
			notify(ch)
		}
	}
	h.mu.Unlock()
	if timers {
		notify(h.timers)
	}
	if deferred {
		notify(h.deferred)
	}
}

// Watch returns a channel signalled when the execution changes, and a
// function that ends the watch.
func (h *Hub) Watch(executionID string) (<-chan struct{}, func()) {
	return h.watch(executionID, false)
}

// WatchEnd is Watch for the execution's end only: a waiter for the
// result need not read the execution at each of its steps.
func (h *Hub) WatchEnd(executionID string) (<-chan struct{}, func()) {
	return h.watch(executionID, true)
}

func (h *Hub) watch(executionID string, endOnly bool) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	set := h.watchers[executionID]
	if set == nil {
		set = make(map[chan struct{}]bool)
		h.watchers[executionID] = set
	}
	set[ch] = endOnly
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(set, ch)
		if len(set) == 0 {
			delete(h.watchers, executionID)
		}
		h.mu.Unlock()
	}
}

// TasksReady returns a channel signalled when new tasks may be waiting, and
// a function that ends the subscription. Every subscriber is signalled:
// the local worker and each long-polling remote claim.
func (h *Hub) TasksReady() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.tasks[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.tasks, ch)
		h.mu.Unlock()
	}
}

// WorkflowsGeneration counts the workflow and tenant changes applied so
// far.
func (h *Hub) WorkflowsGeneration() uint64 { return h.workflows.Load() }

// Deferred is signalled when an execution was deferred: work is left for
// a Continue command.
func (h *Hub) Deferred() <-chan struct{} { return h.deferred }

// TimersChanged is signalled when a timer was created.
func (h *Hub) TimersChanged() <-chan struct{} { return h.timers }

// Finished returns a channel of the ids of executions that end from now
// on, and a function that stops the subscription.
func (h *Hub) Finished() (<-chan string, func()) {
	ch := make(chan string, 256)
	h.mu.Lock()
	h.finished[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.finished, ch)
		h.mu.Unlock()
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
