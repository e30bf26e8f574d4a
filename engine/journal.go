package engine

// Journal entry types (CONTRACT §5). Each entry of an execution's journal
// carries one of them in its "type" field.
const (
	EntryExecutionStarted      = "execution_started"
	EntryNodeAttemptStarted    = "node_attempt_started"
	EntryNodeAttemptFinished   = "node_attempt_finished"
	EntryExecutionSucceeded    = "execution_succeeded"
	EntryExecutionFailed       = "execution_failed"
	EntryCancellationRequested = "cancellation_requested"
	EntryExecutionCancelled    = "execution_cancelled"
	EntryExecutionTimedOut     = "execution_timed_out"
	// EntryExecutionQueued opens the journal of an execution that waits
	// for a free slot under engine.max_concurrent_executions; its
	// execution_started follows when it starts.
	EntryExecutionQueued = "execution_queued"
)
