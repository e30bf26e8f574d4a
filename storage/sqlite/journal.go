package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"

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

// errJournalPacking reports a "more" column that does not decode.
var errJournalPacking = errors.New("malformed packed journal entries")

// appendPacked appends e's packed form to dst.
func appendPacked(dst []byte, e *storage.JournalEntry) []byte {
	dst = appendString(dst, e.Type)
	dst = binary.AppendVarint(dst, unixNano(e.At))
	dst = appendString(dst, e.Node)
	dst = binary.AppendVarint(dst, int64(e.Attempt))
	dst = appendString(dst, e.IdempotencyKey)
	if e.Data == nil {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Data))+1)
	return append(dst, e.Data...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// unpack appends to out the entries packed in more, numbered from seq on.
// The entries' data alias more.
func unpack(out []storage.JournalEntry, seq int64, more []byte) ([]storage.JournalEntry, error) {
	d := unpacker{b: more}
	for len(d.b) > 0 {
		var e storage.JournalEntry
		e.Seq = seq
		e.Type = d.string()
		e.At = fromUnixNano(d.varint())
		e.Node = d.string()
		e.Attempt = int(d.varint())
		e.IdempotencyKey = d.string()
		if n := d.uvarint(); n > 0 {
			e.Data = d.bytes(n - 1)
		}
		if d.err != nil {
			return out, fmt.Errorf("journal entry %d: %w", seq, d.err)
		}
		out = append(out, e)
		seq++
	}
	return out, nil
}

// unpacker reads packed entries; the first error sticks.
type unpacker struct {
	b   []byte
	err error
}

func (d *unpacker) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errJournalPacking
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *unpacker) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errJournalPacking
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *unpacker) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errJournalPacking
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *unpacker) string() string { return string(d.bytes(d.uvarint())) }

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
