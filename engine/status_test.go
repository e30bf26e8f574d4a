package engine

import "testing"

func TestExecutionStatus(t *testing.T) {
	all := []ExecutionStatus{StatusPending, StatusRunning, StatusSucceeded, StatusFailed, StatusCancelled, StatusTimedOut}
	allowed := map[ExecutionStatus][]ExecutionStatus{
		StatusPending: {StatusRunning, StatusCancelled, StatusTimedOut, StatusFailed},
		StatusRunning: {StatusSucceeded, StatusFailed, StatusCancelled, StatusTimedOut},
	}
	for _, from := range all {
		if got, want := from.Terminal(), len(allowed[from]) == 0; got != want {
			t.Errorf("%s.Terminal() = %v, want %v", from, got, want)
		}
		for _, to := range all {
			want := false
			for _, s := range allowed[from] {
				want = want || s == to
			}
			if got := CanTransitionExecution(from, to); got != want {
				t.Errorf("CanTransitionExecution(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	if ExecutionStatus("bogus").Terminal() || CanTransitionExecution("bogus", StatusRunning) {
		t.Error("an unknown status is terminal or can transition")
	}
}

func TestNodeStatus(t *testing.T) {
	all := []NodeStatus{NodePending, NodeRunning, NodeSucceeded, NodeFailed, NodeSkipped, NodeCancelled}
	allowed := map[NodeStatus][]NodeStatus{
		NodePending: {NodeRunning, NodeSkipped, NodeCancelled, NodeFailed},
		NodeRunning: {NodeRunning, NodeSucceeded, NodeFailed, NodeCancelled},
	}
	for _, from := range all {
		if got, want := from.Terminal(), len(allowed[from]) == 0; got != want {
			t.Errorf("%s.Terminal() = %v, want %v", from, got, want)
		}
		for _, to := range all {
			want := false
			for _, s := range allowed[from] {
				want = want || s == to
			}
			if got := CanTransitionNode(from, to); got != want {
				t.Errorf("CanTransitionNode(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}
