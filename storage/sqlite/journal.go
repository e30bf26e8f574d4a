package sqlite

import (
	"encoding/binary"
	"fmt"

	"github.com/nebula-engine/nebula/internal/wire"
	"github.com/nebula-engine/nebula/storage"
)

// A journal row holds a run of consecutive entries of one execution: the
// first in its columns, the others packed in its "more" column, and the
// last one's sequence number in last_seq. A transaction writes one row per
// execution it appended to, so an execution that starts and ends within
// one log entry (eight entries for a three-node chain) costs one b-tree
// insert instead of eight. Rows written before this layout hold one entry
// each, with last_seq = seq and no more.
//
// Packed entry, each following the previous one (seq + 1):
//
//	uvarint len(type), type
//	varint  at (Unix nanoseconds; 0 for the zero time)
//	uvarint len(node), node
//	varint  attempt
//	uvarint len(idempotency key), idempotency key
//	uvarint len(data)+1, data (0 for no data)

// appendPacked appends e's packed form to dst.
func appendPacked(dst []byte, e *storage.JournalEntry) []byte {
	dst = wire.AppendString(dst, e.Type)
	dst = binary.AppendVarint(dst, unixNano(e.At))
	dst = wire.AppendString(dst, e.Node)
	dst = binary.AppendVarint(dst, int64(e.Attempt))
	dst = wire.AppendString(dst, e.IdempotencyKey)
	if e.Data == nil {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Data))+1)
	return append(dst, e.Data...)
}

// unpack appends to out the entries packed in more, numbered from seq on.
// The entries' data alias more.
func unpack(out []storage.JournalEntry, seq int64, more []byte) ([]storage.JournalEntry, error) {
	r := wire.NewReader(more)
	for r.Len() > 0 {
		e := storage.JournalEntry{
			Seq:            seq,
			Type:           r.Str(),
			At:             fromUnixNano(r.Varint()),
			Node:           r.Str(),
			Attempt:        int(r.Varint()),
			IdempotencyKey: r.Str(),
		}
		if n := r.Uvarint(); n > 0 {
			e.Data = r.Next(n - 1)
		}
		if err := r.Err(); err != nil {
			return out, fmt.Errorf("packed journal entry %d: %w", seq, err)
		}
		out = append(out, e)
		seq++
	}
	return out, nil
}

// journalRun is one journal row to write: the buffered entries of one
// execution from batch.journal[first], up to the entry numbered last.
type journalRun struct {
	first int
	last  int64
	more  []byte
}

// journalRuns groups the buffered journal entries into one run per
// execution, in the order each execution first appears, so that every
// replica writes the same rows.
func (b *batch) journalRuns() []journalRun {
	runs := b.runs[:0]
	if b.runAt == nil {
		b.runAt = make(map[execKey]int)
	}
	for i := range b.journal {
		r := &b.journal[i]
		if k, ok := b.runAt[r.exec]; ok && runs[k].last+1 == r.seq {
			runs[k].more = appendPacked(runs[k].more, &r.entry)
			runs[k].last = r.seq
			continue
		}
		b.runAt[r.exec] = len(runs)
		runs = append(runs, journalRun{first: i, last: r.seq})
	}
	clear(b.runAt)
	b.runs = runs
	return runs
}
