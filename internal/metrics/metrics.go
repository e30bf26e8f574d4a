// Package metrics keeps Nebula's Prometheus metrics and serves them in the
// text exposition format.
//
// Each Metrics owns its registry instead of using the global default one,
// so that several nodes in one process (as in tests) never share or
// collide on counters. The other packages do not import this one: they
// expose plain callbacks and the composition root connects them here.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label values of AttemptFinished's outcome.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeStopped   = "stopped"
)

// Unmatched is the route label of requests that matched no route: the raw
// path would give every probe of a random URL its own series.
const Unmatched = "unmatched"

// durationBuckets span a fast builtin action or API read (a millisecond) up
// to a slow HTTP call or a long-polling request (minutes).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// applyBuckets span one small SQLite transaction (tens of microseconds) up
// to a large batch or a slow disk (seconds).
var applyBuckets = prometheus.ExponentialBuckets(50e-6, 2, 16)

// Metrics holds the metrics of one node.
type Metrics struct {
	reg *prometheus.Registry

	executionsStarted  prometheus.Counter
	executionsFinished *prometheus.CounterVec
	attemptDuration    *prometheus.HistogramVec
	httpRequests       *prometheus.CounterVec
	httpDuration       *prometheus.HistogramVec
	leaderChanges      prometheus.Counter
	applyDuration      prometheus.Histogram
	appliedEntries     prometheus.Counter
	entryDuration      prometheus.Histogram
	inlineCost         prometheus.Counter
	inlineNodes        prometheus.Counter
	deferrals          prometheus.Counter
}

// New returns Metrics with the Go runtime and process collectors
// registered.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		executionsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nebula_executions_started_total",
			Help: "Executions that began running (an execution waiting for a concurrency slot counts when it starts), as this node applied them.",
		}),
		executionsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nebula_executions_finished_total",
			Help: "Executions that reached a terminal status, by status, as this node applied them.",
		}, []string{"status"}),
		attemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nebula_node_attempt_duration_seconds",
			Help:    "Time this node's worker spent running node attempts, by action and outcome (succeeded, failed, stopped).",
			Buckets: durationBuckets,
		}, []string{"action", "outcome"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nebula_http_requests_total",
			Help: "API requests served, by method, route template and status code.",
		}, []string{"method", "route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nebula_http_request_duration_seconds",
			Help:    "Time to serve API requests, by method and route template.",
			Buckets: durationBuckets,
		}, []string{"method", "route"}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nebula_raft_leader_changes_total",
			Help: "Times this node saw a new Raft leader (itself included).",
		}),
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nebula_raft_apply_duration_seconds",
			Help:    "Time to apply one batch of committed log entries to the state store.",
			Buckets: applyBuckets,
		}),
		appliedEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nebula_raft_applied_entries_total",
			Help: "Committed log entries applied to the state store.",
		}),
		entryDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nebula_entry_apply_duration_seconds",
			Help:    "Time to apply the commands of one log entry (its share of the commit aside).",
			Buckets: applyBuckets,
		}),
		inlineCost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nebula_inline_cel_cost_total",
			Help: "CEL cost units the state machine spent on conditions and params (bounded per entry).",
		}),
		inlineNodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nebula_inline_nodes_total",
			Help: "Node attempts the state machine started while applying entries (bounded per entry).",
		}),
		deferrals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nebula_deferred_executions_total",
			Help: "Times an execution reached its entry's budget and was left for a later entry.",
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.executionsStarted,
		m.executionsFinished,
		m.attemptDuration,
		m.httpRequests,
		m.httpDuration,
		m.leaderChanges,
		m.applyDuration,
		m.appliedEntries,
		m.entryDuration,
		m.inlineCost,
		m.inlineNodes,
		m.deferrals,
	)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	// A gauge that fails must not hide every other metric.
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ExecutionStarted counts an execution that began running.
func (m *Metrics) ExecutionStarted() { m.executionsStarted.Inc() }

// ExecutionFinished counts an execution that reached status.
func (m *Metrics) ExecutionFinished(status string) {
	m.executionsFinished.WithLabelValues(status).Inc()
}

// AttemptFinished records how long an attempt of action ran and how it
// ended (OutcomeSucceeded, OutcomeFailed or OutcomeStopped).
func (m *Metrics) AttemptFinished(action, outcome string, d time.Duration) {
	m.attemptDuration.WithLabelValues(action, outcome).Observe(d.Seconds())
}

// HTTPRequest records a served request. route must be a route template
// (or Unmatched), never a raw path, to keep the number of series bounded.
func (m *Metrics) HTTPRequest(method, route string, code int, d time.Duration) {
	method = knownMethod(method)
	m.httpRequests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// LeaderChanged counts a new Raft leader seen by this node.
func (m *Metrics) LeaderChanged() { m.leaderChanges.Inc() }

// ObserveApply records one batch of entries applied in d.
func (m *Metrics) ObserveApply(d time.Duration, entries int) {
	m.applyDuration.Observe(d.Seconds())
	m.appliedEntries.Add(float64(entries))
}

// ObserveEntry records one applied log entry: how long its commands took,
// the inline work they did and the executions they deferred.
func (m *Metrics) ObserveEntry(d time.Duration, celCost uint64, nodes, deferred int) {
	m.entryDuration.Observe(d.Seconds())
	m.inlineCost.Add(float64(celCost))
	m.inlineNodes.Add(float64(nodes))
	m.deferrals.Add(float64(deferred))
}

// Watch registers a gauge whose value f returns at each scrape. f runs on
// the scrape's goroutine, so it must be cheap and safe to call
// concurrently. Registering the same name twice panics: it is a wiring
// mistake.
func (m *Metrics) Watch(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// knownMethod returns method when it is a standard one, else "other": the
// method comes from the client and must not mint new series.
func knownMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}
