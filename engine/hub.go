package engine

import "sync"

// Hub fans applied events out to waiters: API requests waiting for an
// execution, and workers waiting for tasks. Signals coalesce: a waiter
// learns that something changed and reads the store to see what.
type Hub struct {
	mu       sync.Mutex
	watchers map[string]map[chan struct{}]struct{} // by execution id
	tasks    chan struct{}
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	return &Hub{watchers: make(map[string]map[chan struct{}]struct{}), tasks: make(chan struct{}, 1)}
}

// Publish delivers events. It never blocks, so the apply path can call it.
func (h *Hub) Publish(events []Event) {
	tasks := false
	h.mu.Lock()
	for _, ev := range events {
		if ev.Kind == EventTasksReady {
			tasks = true
		}
		for ch := range h.watchers[ev.ExecutionID] {
			notify(ch)
		}
	}
	h.mu.Unlock()
	if tasks {
		notify(h.tasks)
	}
}

// Watch returns a channel signalled when the execution changes, and a
// function that ends the watch.
func (h *Hub) Watch(executionID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	set := h.watchers[executionID]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		h.watchers[executionID] = set
	}
	set[ch] = struct{}{}
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

// TasksReady is signalled when new tasks may be waiting.
func (h *Hub) TasksReady() <-chan struct{} { return h.tasks }

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
