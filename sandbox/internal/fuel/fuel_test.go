package fuel

import (
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/nebula-engine/nebula/sandbox/internal/wasmbin"
)

// countdown is a module exporting count(n i32), which loops n times:
//
//	block
//	  loop
//	    local.get 0; i32.eqz; br_if 1
//	    local.get 0; i32.const 1; i32.sub; local.set 0; br 0
//	  end
//	end
//
// Metered, it costs 2 on entry (block, loop), 3 per test of n, 5 per
// iteration and 1 for the final end: 8n+6.
func countdown(code []byte) []byte {
	body := append([]byte{0x00}, code...) // no locals
	return wasmbin.Encode([]wasmbin.Section{
		{ID: wasmbin.SectionType, Content: []byte{0x01, 0x60, 0x01, 0x7f, 0x00}},
		{ID: wasmbin.SectionFunction, Content: []byte{0x01, 0x00}},
		{ID: wasmbin.SectionExport, Content: append(append([]byte{0x01}, wasmbin.AppendName(nil, "count")...), 0x00, 0x00)},
		{ID: wasmbin.SectionCode, Content: append(wasmbin.AppendU32([]byte{0x01}, uint32(len(body))), body...)},
	})
}

var countdownCode = []byte{
	0x02, 0x40, 0x03, 0x40,
	0x20, 0x00, 0x45, 0x0d, 0x01,
	0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, 0x0c, 0x00,
	0x0b, 0x0b, 0x0b,
}

func TestInstrumentCounts(t *testing.T) {
	ctx := context.Background()
	metered, err := Instrument(countdown(countdownCode), "fuel")
	if err != nil {
		t.Fatal(err)
	}
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	compiled, err := rt.CompileModule(ctx, metered)
	if err != nil {
		t.Fatalf("metered module does not compile: %v", err)
	}

	tests := []struct {
		n      uint64
		budget int64
		trap   bool
	}{
		{n: 0, budget: 1000},
		{n: 1, budget: 1000},
		{n: 10, budget: 1000},
		{n: 1000, budget: 1 << 40},
		{n: 10, budget: 8*10 + 6},             // exactly enough
		{n: 10, budget: 8*10 + 5, trap: true}, // one short
		{n: 1 << 30, budget: 5000, trap: true},
	}
	for _, tt := range tests {
		mod, err := rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatal(err)
		}
		g := mod.ExportedGlobal("fuel").(api.MutableGlobal)
		g.Set(uint64(tt.budget))
		_, err = mod.ExportedFunction("count").Call(ctx, tt.n)
		left := int64(g.Get())
		switch {
		case tt.trap:
			if err == nil || !strings.Contains(err.Error(), "unreachable") || left >= 0 {
				t.Errorf("count(%d) with %d fuel: err %v, fuel left %d; want a trap and negative fuel", tt.n, tt.budget, err, left)
			}
		case err != nil:
			t.Errorf("count(%d): %v", tt.n, err)
		default:
			if used, want := tt.budget-left, int64(8*tt.n+6); used != want {
				t.Errorf("count(%d) used %d fuel, want %d", tt.n, used, want)
			}
		}
		mod.Close(ctx)
	}
}

func TestInstrumentRefuses(t *testing.T) {
	exportsFuel := wasmbin.Encode([]wasmbin.Section{
		{ID: wasmbin.SectionGlobal, Content: []byte{0x01, 0x7e, 0x01, 0x42, 0x00, 0x0b}},
		{ID: wasmbin.SectionExport, Content: append(append([]byte{0x01}, wasmbin.AppendName(nil, "fuel")...), 0x03, 0x00)},
	})
	tests := []struct {
		name   string
		module []byte
		want   string
	}{
		{"not wasm", []byte("\x7fELF"), "not a WebAssembly binary"},
		{"truncated", func() []byte { m := countdown(countdownCode); return m[:len(m)-3] }(), "unexpected end"},
		{"SIMD", countdown([]byte{0xfd, 0x0c, 0x0b}), "unsupported opcode 0xfd"},
		{"tail call", countdown([]byte{0x12, 0x00, 0x0b}), "unsupported opcode 0x12"},
		{"unknown 0xfc", countdown([]byte{0xfc, 0x20, 0x0b}), "unsupported opcode 0xfc 32"},
		{"no final end", countdown([]byte{0x01}), "does not end with end"},
		{"name taken", exportsFuel, `already exports "fuel"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Instrument(tt.module, "fuel")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Instrument() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestInstrumentAddsSections checks a module without global and export
// sections gets them, in an order wazero accepts.
func TestInstrumentAddsSections(t *testing.T) {
	ctx := context.Background()
	module := wasmbin.Encode([]wasmbin.Section{
		{ID: wasmbin.SectionType, Content: []byte{0x01, 0x60, 0x00, 0x00}},
		{ID: wasmbin.SectionFunction, Content: []byte{0x01, 0x00}},
		{ID: wasmbin.SectionMemory, Content: []byte{0x01, 0x00, 0x01}},
		{ID: wasmbin.SectionCode, Content: []byte{0x01, 0x02, 0x00, 0x0b}},
		{ID: wasmbin.SectionData, Content: []byte{0x00}},
	})
	metered, err := Instrument(module, "fuel")
	if err != nil {
		t.Fatal(err)
	}
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, metered)
	if err != nil {
		t.Fatalf("metered module: %v", err)
	}
	if mod.ExportedGlobal("fuel") == nil {
		t.Error("fuel global not exported")
	}
}
