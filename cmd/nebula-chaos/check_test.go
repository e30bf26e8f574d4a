package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var testNodes = []string{"n1", "n2", "n3"}

// ms is a time in the history, in milliseconds.
func ms(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }

func intp(n int) *int { return &n }

// goodJournal is the journal of an execution of the chaos workflow that
// succeeded, node c's first attempt lost with its lease.
func goodJournal() []Entry {
	e := func(seq int64, typ, node string, attempt int, errMsg string) Entry {
		en := Entry{Seq: seq, Type: typ, Node: node, Attempt: attempt}
		if errMsg != "" {
			en.Error = json.RawMessage(`"` + errMsg + `"`)
		}
		return en
	}
	return []Entry{
		e(1, "execution_started", "", 0, ""),
		e(2, "node_attempt_started", "a", 1, ""),
		e(3, "node_attempt_finished", "a", 1, ""),
		e(4, "node_attempt_started", "b", 1, ""),
		e(5, "node_attempt_finished", "b", 1, ""),
		e(6, "node_attempt_started", "c", 1, ""),
		e(7, "node_attempt_finished", "c", 1, "lease of n2/x lost: attempt abandoned"),
		e(8, "node_attempt_started", "c", 2, ""),
		e(9, "node_attempt_finished", "c", 2, ""),
		e(10, "node_attempt_started", "d", 1, ""),
		e(11, "node_attempt_finished", "d", 1, ""),
		e(12, "execution_succeeded", "", 0, ""),
	}
}

// goodCase is a history in which nothing is wrong: execution e1 (key k1,
// input 1) started once after a timed-out try, read by three clients,
// and ending succeeded with output 2 on every node.
func goodCase() ([]Op, *Final) {
	h := []Op{
		{Client: 0, Kind: OpStart, Node: "n1", Key: "k1", Input: 1, Call: ms(0), Return: ms(2000), Outcome: OutUnknown, Err: "timeout"},
		{Client: 0, Kind: OpStart, Node: "n2", Key: "k1", Input: 1, Exec: "e1", Call: ms(2100), Return: ms(2120), Outcome: OutOK, Status: "running", HTTP: 200},
		{Client: 1, Kind: OpRead, Node: "n3", Exec: "e1", Consistent: true, Call: ms(2200), Return: ms(2210), Outcome: OutOK, Status: "running"},
		{Client: 0, Kind: OpRead, Node: "n1", Exec: "e1", Call: ms(2300), Return: ms(2310), Outcome: OutOK, Status: notFound}, // n1 lags: fine
		{Client: 2, Kind: OpRead, Node: "n2", Exec: "e1", Consistent: true, Call: ms(2400), Return: ms(2600), Outcome: OutOK, Status: "succeeded"},
		{Client: 1, Kind: OpCancel, Node: "n1", Exec: "e1", Call: ms(2650), Return: ms(2700), Outcome: OutOK, Status: "succeeded"},
		{Client: 0, Kind: OpRead, Node: "n1", Exec: "e1", Call: ms(2800), Return: ms(2810), Outcome: OutOK, Status: "succeeded"},
		{Client: 1, Kind: OpRead, Node: "n3", Exec: "e1", Consistent: true, Call: ms(2900), Return: ms(2950), Outcome: OutFail, Err: "503"},
	}
	fe := &FinalExec{
		ID: "e1", Key: "k1", Input: intp(1), Output: json.RawMessage("2"),
		Status:   map[string]string{},
		Nodes:    map[string]NodeView{"a": {"succeeded", 1}, "b": {"succeeded", 1}, "c": {"succeeded", 2}, "d": {"succeeded", 1}},
		Journals: map[string][]Entry{},
	}
	f := &Final{Nodes: testNodes, Listed: map[string]map[string]Listed{}, Execs: map[string]*FinalExec{"e1": fe}}
	for _, n := range testNodes {
		fe.Status[n] = "succeeded"
		fe.Journals[n] = goodJournal()
		f.Listed[n] = map[string]Listed{"e1": {Key: "k1", Status: "succeeded"}}
		h = append(h, Op{Client: 8, Kind: OpRead, Node: n, Exec: "e1", Consistent: true, Call: ms(5000), Return: ms(5010), Outcome: OutOK, Status: "succeeded"})
	}
	return h, f
}

func TestCheckersPassAGoodHistory(t *testing.T) {
	h, f := goodCase()
	r := check(h, f, 10*time.Second)
	if len(r.Violations) > 0 || r.Porcupine != porcupine.Ok {
		t.Fatalf("violations in a good history (porcupine %s): %+v", r.Porcupine, r.Violations)
	}
	if r.Attempts != 5 || r.Rerun != 1 {
		t.Errorf("attempts %d, rerun %d; want 5 and 1", r.Attempts, r.Rerun)
	}
}

func TestCheckersCatchBadHistories(t *testing.T) {
	cases := []struct {
		name  string
		check string
		want  string // in the violation's detail
		spoil func(h []Op, f *Final) []Op
	}{
		{"lost execution", checkLost, "never read back", func(h []Op, f *Final) []Op {
			// e2 was acknowledged, and no node has it.
			return append(h, Op{Client: 3, Kind: OpStart, Node: "n1", Key: "k2", Input: 2, Exec: "e2", Call: ms(100), Return: ms(120), Outcome: OutOK, Status: "running", HTTP: 201})
		}},
		{"execution missing on one node", checkLost, "n3 answers not found", func(h []Op, f *Final) []Op {
			f.Execs["e1"].Status["n3"] = notFound
			return h
		}},
		{"duplicate key", checkOnce, "key k1 has 2 executions", func(h []Op, f *Final) []Op {
			// The retry under k1 made a second execution.
			for _, n := range testNodes {
				f.Listed[n]["e9"] = Listed{Key: "k1", Status: "succeeded"}
			}
			return h
		}},
		{"key acknowledged with two ids", checkOnce, "different executions", func(h []Op, f *Final) []Op {
			return append(h, Op{Client: 0, Kind: OpStart, Node: "n3", Key: "k1", Input: 1, Exec: "e7", Call: ms(2130), Return: ms(2140), Outcome: OutOK, Status: "running", HTTP: 201})
		}},
		{"double attempt", checkAttempts, "attempt 2 of node c finished twice", func(h []Op, f *Final) []Op {
			for _, n := range testNodes {
				j := f.Execs["e1"].Journals[n]
				dup := j[8] // c's second attempt, finished
				dup.Seq = 9
				j = append(append(append([]Entry{}, j[:9]...), dup), j[9:]...)
				for i := 10; i < len(j); i++ {
					j[i].Seq = int64(i + 1)
				}
				f.Execs["e1"].Journals[n] = j
			}
			return h
		}},
		{"two successful attempts", checkAttempts, "node c has 2 successful attempts", func(h []Op, f *Final) []Op {
			for _, n := range testNodes {
				f.Execs["e1"].Journals[n][6].Error = nil // the lost attempt "succeeded" too
			}
			return h
		}},
		{"status going backwards", checkTransitions, "client 2 saw succeeded", func(h []Op, f *Final) []Op {
			return append(h, Op{Client: 2, Kind: OpRead, Node: "n3", Exec: "e1", Consistent: true, Call: ms(3000), Return: ms(3010), Outcome: OutOK, Status: "running"})
		}},
		{"local read going backwards on one node", checkTransitions, "client 0 saw succeeded", func(h []Op, f *Final) []Op {
			return append(h, Op{Client: 0, Kind: OpRead, Node: "n1", Exec: "e1", Call: ms(3000), Return: ms(3010), Outcome: OutOK, Status: "running"})
		}},
		{"terminal status changing", checkTransitions, "terminal status changed", func(h []Op, f *Final) []Op {
			return append(h, Op{Client: 5, Kind: OpRead, Node: "n2", Exec: "e1", Call: ms(3000), Return: ms(3010), Outcome: OutOK, Status: "cancelled"})
		}},
		{"journal out of order", checkTransitions, "execution_succeeded (seq 13) after cancellation_requested", func(h []Op, f *Final) []Op {
			for _, n := range testNodes {
				j := f.Execs["e1"].Journals[n]
				j[11] = Entry{Seq: 12, Type: "cancellation_requested"}
				f.Execs["e1"].Journals[n] = append(j, Entry{Seq: 13, Type: "execution_succeeded"})
			}
			return h
		}},
		{"non-linearizable reads", checkLinear, "no linearization", func(h []Op, f *Final) []Op {
			// Client 3 reads running after client 2's consistent read of
			// succeeded had returned: each client alone saw no regression.
			return append(h, Op{Client: 3, Kind: OpRead, Node: "n1", Exec: "e1", Consistent: true, Call: ms(2620), Return: ms(2640), Outcome: OutOK, Status: "running"})
		}},
		{"diverging replicas", checkReplicas, "journal on n2", func(h []Op, f *Final) []Op {
			f.Execs["e1"].Journals["n2"] = f.Execs["e1"].Journals["n2"][:11]
			return h
		}},
		{"journal unreadable on one node", checkReplicas, "n3 reads the execution but not its journal", func(h []Op, f *Final) []Op {
			delete(f.Execs["e1"].Journals, "n3")
			return h
		}},
		{"wrong output", checkOutputs, "want 2", func(h []Op, f *Final) []Op {
			f.Execs["e1"].Output = json.RawMessage("3")
			return h
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, f := goodCase()
			h = tc.spoil(h, f)
			r := check(h, f, 10*time.Second)
			found := false
			for _, v := range r.Violations {
				found = found || v.Check == tc.check && strings.Contains(v.Detail, tc.want)
			}
			if !found {
				t.Fatalf("no [%s] violation mentioning %q; got %+v", tc.check, tc.want, r.Violations)
			}
			if tc.check == checkLinear {
				if r.Porcupine != porcupine.Illegal {
					t.Errorf("porcupine: %s, want Illegal", r.Porcupine)
				}
				// Each client's own view moved forward: only porcupine can
				// tell.
				if n := r.Failed()[checkTransitions]; n > 0 {
					t.Errorf("%d transition violations, want none: %+v", n, r.Violations)
				}
				var html bytes.Buffer
				if err := visualize(r, []faultRecord{{Kind: faultPause, Node: "n2", Start: time.Second, Healed: 2 * time.Second}}, &html); err != nil || !strings.Contains(html.String(), "<html") {
					t.Errorf("visualization: %v, %d bytes", err, html.Len())
				}
			}
		})
	}
}

// TestStatusModel checks the register model on its own.
func TestStatusModel(t *testing.T) {
	op := func(kind OpKind, call, ret int, out string) porcupine.Operation {
		return porcupine.Operation{Input: linInput{Kind: kind, Exec: "e"}, Call: int64(call), Return: int64(ret), Output: out}
	}
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"forward", []porcupine.Operation{op(OpStart, 0, 1, "pending"), op(OpRead, 2, 3, "running"), op(OpRead, 4, 5, "cancelled")}, true},
		{"concurrent reads in either order", []porcupine.Operation{op(OpStart, 0, 1, "running"), op(OpRead, 2, 9, "succeeded"), op(OpRead, 3, 8, "running")}, true},
		{"not found after the start", []porcupine.Operation{op(OpStart, 0, 1, "running"), op(OpRead, 2, 3, notFound)}, false},
		{"cancel answering running", []porcupine.Operation{op(OpStart, 0, 1, "running"), op(OpCancel, 2, 3, "running")}, false},
		{"two terminal statuses", []porcupine.Operation{op(OpStart, 0, 1, "running"), op(OpRead, 2, 3, "failed"), op(OpRead, 4, 5, "succeeded")}, false},
	} {
		if got := porcupine.CheckOperations(statusModel, tc.ops); got != tc.ok {
			t.Errorf("%s: linearizable = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestParseFaults(t *testing.T) {
	if k, err := parseFaults("all"); err != nil || len(k) != len(allFaults) {
		t.Errorf("all: %v %v", k, err)
	}
	if k, err := parseFaults("pause, kill-leader"); err != nil || strings.Join(k, ",") != "pause,kill-leader" {
		t.Errorf("list: %v %v", k, err)
	}
	if _, err := parseFaults("pause,flood"); err == nil {
		t.Error("an unknown fault was accepted")
	}
}
