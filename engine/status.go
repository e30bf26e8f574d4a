package engine

// ExecutionStatus is the state of an execution.
type ExecutionStatus string

// Execution statuses (CONTRACT §5).
const (
	StatusPending   ExecutionStatus = "pending"
	StatusRunning   ExecutionStatus = "running"
	StatusSucceeded ExecutionStatus = "succeeded"
	StatusFailed    ExecutionStatus = "failed"
	StatusCancelled ExecutionStatus = "cancelled"
	StatusTimedOut  ExecutionStatus = "timed_out"
)

// Terminal reports whether s is final: no transition leaves it.
func (s ExecutionStatus) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusTimedOut:
		return true
	}
	return false
}

// CanTransitionExecution reports whether an execution may move from one
// status to another. A pending execution may also end without running: it
// can be cancelled, time out, or fail (for instance when its definition
// cannot be planned).
func CanTransitionExecution(from, to ExecutionStatus) bool {
	switch from {
	case StatusPending:
		return to == StatusRunning || to == StatusCancelled || to == StatusTimedOut || to == StatusFailed
	case StatusRunning:
		return to == StatusSucceeded || to == StatusFailed || to == StatusCancelled || to == StatusTimedOut
	}
	return false
}

// NodeStatus is the state of one node within an execution.
type NodeStatus string

// Node statuses (CONTRACT §5).
const (
	NodePending   NodeStatus = "pending"
	NodeRunning   NodeStatus = "running"
	NodeSucceeded NodeStatus = "succeeded"
	NodeFailed    NodeStatus = "failed"
	NodeSkipped   NodeStatus = "skipped"
	NodeCancelled NodeStatus = "cancelled"
)

// Terminal reports whether s is final: no transition leaves it.
func (s NodeStatus) Terminal() bool {
	switch s {
	case NodeSucceeded, NodeFailed, NodeSkipped, NodeCancelled:
		return true
	}
	return false
}

// CanTransitionNode reports whether a node may move from one status to
// another. running -> running is the start of a retry attempt.
func CanTransitionNode(from, to NodeStatus) bool {
	switch from {
	case NodePending:
		// Failed straight from pending: its params could not be resolved,
		// so no attempt could run.
		return to == NodeRunning || to == NodeSkipped || to == NodeCancelled || to == NodeFailed
	case NodeRunning:
		return to == NodeRunning || to == NodeSucceeded || to == NodeFailed || to == NodeCancelled
	}
	return false
}
