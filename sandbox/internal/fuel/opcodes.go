package fuel

import (
	"fmt"

	"github.com/nebula-engine/nebula/sandbox/internal/wasmbin"
)

// flow is what an instruction does to control flow, as far as metering
// cares.
type flow uint8

const (
	flowNone flow = iota
	flowLoop      // loop: the body is entered again by every back edge
	flowIf        // if: the then branch runs only sometimes
	flowElse      // else: entered by a jump from the if
	flowEnd       // end: a branch target for blocks and ifs
	flowBrIf      // br_if: what follows runs only when the branch is not taken
	flowJump      // br, br_table, return, unreachable: what follows is dead
)

// endsSegment reports whether the next instruction may be reached other than
// by falling through from this one, so it needs its own charge.
func (f flow) endsSegment() bool {
	switch f {
	case flowLoop, flowIf, flowElse, flowEnd, flowBrIf:
		return true
	}
	return false
}

// decode reads one instruction, skipping its immediates. It covers the MVP,
// sign extension, non-trapping float-to-int conversions, bulk memory and
// reference types: what Go, Rust and C toolchains emit by default.
func decode(r *wasmbin.Reader) (flow, error) {
	at := r.Pos()
	op, err := r.Byte()
	if err != nil {
		return 0, err
	}
	switch {
	case op == 0x00: // unreachable
		return flowJump, nil
	case op == 0x01: // nop
		return flowNone, nil
	case op >= 0x02 && op <= 0x04: // block, loop, if
		if err := skipBlockType(r); err != nil {
			return 0, err
		}
		return [...]flow{flowNone, flowLoop, flowIf}[op-0x02], nil
	case op == 0x05:
		return flowElse, nil
	case op == 0x0b:
		return flowEnd, nil
	case op == 0x0c: // br
		return flowJump, skipU32(r, 1)
	case op == 0x0d: // br_if
		return flowBrIf, skipU32(r, 1)
	case op == 0x0e: // br_table
		n, err := r.U32()
		if err != nil {
			return 0, err
		}
		return flowJump, skipU32(r, int(n)+1)
	case op == 0x0f: // return
		return flowJump, nil
	case op == 0x10: // call
		return flowNone, skipU32(r, 1)
	case op == 0x11: // call_indirect: type, table
		return flowNone, skipU32(r, 2)
	case op == 0x1a || op == 0x1b: // drop, select
		return flowNone, nil
	case op == 0x1c: // select with types
		n, err := r.U32()
		if err != nil {
			return 0, err
		}
		_, err = r.Skip(int(n))
		return flowNone, err
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
		return flowNone, skipU32(r, 1)
	case op >= 0x28 && op <= 0x3e: // loads and stores: align, offset
		align, err := r.U32()
		if err != nil {
			return 0, err
		}
		if align&0x40 != 0 {
			return 0, fmt.Errorf("multiple memories are not supported (offset %d)", at)
		}
		_, err = r.U32()
		return flowNone, err
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		return flowNone, skipU32(r, 1)
	case op == 0x41:
		_, err := r.S(32)
		return flowNone, err
	case op == 0x42:
		_, err := r.S(64)
		return flowNone, err
	case op == 0x43:
		_, err := r.Skip(4)
		return flowNone, err
	case op == 0x44:
		_, err := r.Skip(8)
		return flowNone, err
	case op >= 0x45 && op <= 0xc4: // numeric, including sign extension
		return flowNone, nil
	case op == 0xd0: // ref.null
		_, err := r.Byte()
		return flowNone, err
	case op == 0xd1: // ref.is_null
		return flowNone, nil
	case op == 0xd2: // ref.func
		return flowNone, skipU32(r, 1)
	case op == 0xfc:
		return decodeFC(r, at)
	}
	return 0, fmt.Errorf("unsupported opcode %#02x at offset %d", op, at)
}

// immFC is the number of u32 immediates of each 0xFC-prefixed instruction:
// 0-7 saturating truncations, 8-11 bulk memory, 12-17 table operations.
var immFC = [...]int{0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 1, 2, 1, 2, 1, 1, 1}

func decodeFC(r *wasmbin.Reader, at int) (flow, error) {
	sub, err := r.U32()
	if err != nil {
		return 0, err
	}
	if int(sub) >= len(immFC) {
		return 0, fmt.Errorf("unsupported opcode 0xfc %d at offset %d", sub, at)
	}
	return flowNone, skipU32(r, immFC[sub])
}

func skipU32(r *wasmbin.Reader, n int) error {
	for range n {
		if _, err := r.U32(); err != nil {
			return err
		}
	}
	return nil
}

func skipBlockType(r *wasmbin.Reader) error {
	b, err := r.Peek()
	if err != nil {
		return err
	}
	switch b {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f: // empty or one value type
		_, err = r.Byte()
		return err
	}
	_, err = r.S(33) // a type index
	return err
}
