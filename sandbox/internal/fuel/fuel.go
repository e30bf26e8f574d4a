// Package fuel meters WebAssembly modules deterministically by rewriting
// them: a mutable i64 global holds the remaining fuel, and code is charged
// for its instructions before it runs, so the same module on the same input
// always burns the same fuel, whatever the machine or the compiler.
//
// Code is split into straight-line segments that start at a function's entry
// and right after every loop, if, else, end and br_if (the places control
// can arrive at other than by falling through). Each segment starts with
//
//	global.get $fuel; i64.const cost; i64.sub; global.set $fuel
//	global.get $fuel; i64.const 0; i64.lt_s; if; unreachable; end
//
// where cost is the number of instructions of the segment, not counting
// dead code after an unconditional branch. A run that overdraws traps with
// "unreachable" and leaves the global negative, which is how a caller tells
// exhaustion from a trap of the module's own.
//
// Metering at loop heads and function entries is what bounds execution:
// every back edge and every call pays before it goes on.
package fuel

import (
	"fmt"

	"github.com/nebula-engine/nebula/sandbox/internal/wasmbin"
)

const valI64 = 0x7e

// Instrument returns a copy of module with fuel metering added and the fuel
// global exported under exportName. The global starts at zero, so the caller
// must set it before running anything. Modules using opcodes this package
// does not know (SIMD, threads, tail calls, exceptions, GC) are refused.
func Instrument(module []byte, exportName string) ([]byte, error) {
	sections, err := wasmbin.Parse(module)
	if err != nil {
		return nil, err
	}
	var importedGlobals, definedGlobals uint32
	for _, s := range sections {
		switch s.ID {
		case wasmbin.SectionImport:
			imports, err := wasmbin.Imports(s.Content)
			if err != nil {
				return nil, fmt.Errorf("wasm: import section: %w", err)
			}
			for _, im := range imports {
				if im.Kind == wasmbin.KindGlobal {
					importedGlobals++
				}
			}
		case wasmbin.SectionGlobal:
			if definedGlobals, err = wasmbin.NewReader(s.Content).U32(); err != nil {
				return nil, fmt.Errorf("wasm: global section: %w", err)
			}
		case wasmbin.SectionExport:
			if err := checkExportName(s.Content, exportName); err != nil {
				return nil, err
			}
		}
	}
	// Appending a global after all others leaves every existing index as it is.
	idx := importedGlobals + definedGlobals

	out := make([]wasmbin.Section, 0, len(sections)+2)
	for _, s := range sections {
		if s.ID == wasmbin.SectionCode {
			content, err := instrumentCode(s.Content, idx)
			if err != nil {
				return nil, err
			}
			s.Content = content
		}
		out = append(out, s)
	}

	global := []byte{valI64, 0x01, 0x42, 0x00, 0x0b} // mutable i64 = i64.const 0
	out = appendEntry(out, wasmbin.SectionGlobal, global)
	export := append(wasmbin.AppendName(nil, exportName), wasmbin.KindGlobal)
	export = wasmbin.AppendU32(export, idx)
	out = appendEntry(out, wasmbin.SectionExport, export)
	return wasmbin.Encode(out), nil
}

// appendEntry adds entry to the vector section id, creating the section in
// its required place when the module has none.
func appendEntry(sections []wasmbin.Section, id byte, entry []byte) []wasmbin.Section {
	for i, s := range sections {
		if s.ID != id {
			continue
		}
		r := wasmbin.NewReader(s.Content)
		n, _ := r.U32() // already read once by Instrument
		content := wasmbin.AppendU32(nil, n+1)
		content = append(content, s.Content[r.Pos():]...)
		sections[i].Content = append(content, entry...)
		return sections
	}
	at := len(sections)
	for i, s := range sections {
		if wasmbin.Before(id, s.ID) {
			at = i
			break
		}
	}
	content := append(wasmbin.AppendU32(nil, 1), entry...)
	return append(sections[:at], append([]wasmbin.Section{{ID: id, Content: content}}, sections[at:]...)...)
}

func checkExportName(content []byte, name string) error {
	r := wasmbin.NewReader(content)
	n, err := r.U32()
	if err != nil {
		return fmt.Errorf("wasm: export section: %w", err)
	}
	for range n {
		got, err := r.Name()
		if err != nil {
			return fmt.Errorf("wasm: export section: %w", err)
		}
		if got == name {
			return fmt.Errorf("wasm: module already exports %q, the name fuel metering needs", name)
		}
		if _, err := r.Byte(); err != nil {
			return err
		}
		if _, err := r.U32(); err != nil {
			return err
		}
	}
	return nil
}

func instrumentCode(content []byte, fuelIdx uint32) ([]byte, error) {
	r := wasmbin.NewReader(content)
	n, err := r.U32()
	if err != nil {
		return nil, fmt.Errorf("wasm: code section: %w", err)
	}
	// Most bodies grow by a third or so; one allocation up front saves many.
	out := make([]byte, 0, len(content)+len(content)/2)
	out = wasmbin.AppendU32(out, n)
	var body []byte
	for i := range n {
		b, err := r.Bytes()
		if err != nil {
			return nil, fmt.Errorf("wasm: code section: function body %d: %w", i, err)
		}
		body, err = instrumentBody(body[:0], b, fuelIdx)
		if err != nil {
			return nil, fmt.Errorf("wasm: function body %d: %w", i, err)
		}
		out = wasmbin.AppendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("wasm: code section: %d trailing bytes", r.Len())
	}
	return out, nil
}

// instr is one decoded instruction: where its bytes are and how it affects
// control flow.
type instr struct {
	start, end int
	flow       flow
}

func instrumentBody(out, body []byte, fuelIdx uint32) ([]byte, error) {
	r := wasmbin.NewReader(body)
	groups, err := r.U32()
	if err != nil {
		return nil, err
	}
	for range groups {
		if _, err := r.U32(); err != nil {
			return nil, err
		}
		if _, err := r.Byte(); err != nil {
			return nil, err
		}
	}
	out = append(out, body[:r.Pos()]...)

	var code []instr
	for r.Len() > 0 {
		start := r.Pos()
		f, err := decode(r)
		if err != nil {
			return nil, err
		}
		code = append(code, instr{start: start, end: r.Pos(), flow: f})
	}
	if len(code) == 0 || code[len(code)-1].flow != flowEnd {
		return nil, fmt.Errorf("body does not end with end")
	}

	segmentStart := true
	for i, in := range code {
		if segmentStart {
			if cost := segmentCost(code[i:]); cost > 0 {
				out = appendCharge(out, fuelIdx, cost)
			}
		}
		out = append(out, body[in.start:in.end]...)
		segmentStart = in.flow.endsSegment()
	}
	return out, nil
}

// segmentCost counts the instructions that run when control enters at
// code[0] and falls through to the end of the segment.
func segmentCost(code []instr) int64 {
	var cost int64
	for _, in := range code {
		cost++
		if in.flow.endsSegment() || in.flow == flowJump {
			break
		}
	}
	return cost
}

func appendCharge(out []byte, idx uint32, cost int64) []byte {
	out = append(out, 0x23) // global.get
	out = wasmbin.AppendU32(out, idx)
	out = append(out, 0x42) // i64.const
	out = wasmbin.AppendS64(out, cost)
	out = append(out, 0x7d, 0x24) // i64.sub; global.set
	out = wasmbin.AppendU32(out, idx)
	out = append(out, 0x23) // global.get
	out = wasmbin.AppendU32(out, idx)
	// i64.const 0; i64.lt_s; if (empty); unreachable; end
	return append(out, 0x42, 0x00, 0x53, 0x04, 0x40, 0x00, 0x0b)
}
