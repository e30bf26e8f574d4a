package wasmbin

import (
	"bytes"
	"math"
	"testing"
)

func TestLEB128(t *testing.T) {
	for _, v := range []uint32{0, 1, 63, 64, 127, 128, 300, 1 << 21, math.MaxUint32} {
		b := AppendU32(nil, v)
		got, err := NewReader(b).U32()
		if err != nil || got != v {
			t.Errorf("U32(AppendU32(%d) = % x) = %d, %v", v, b, got, err)
		}
	}
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, 1 << 40, math.MinInt64, math.MaxInt64} {
		b := AppendS64(nil, v)
		got, err := NewReader(b).S(64)
		if err != nil || got != v {
			t.Errorf("S(AppendS64(%d) = % x) = %d, %v", v, b, got, err)
		}
	}
	for _, b := range [][]byte{{0x80}, {0x80, 0x80, 0x80, 0x80, 0x80, 0x01}} {
		if _, err := NewReader(b).U32(); err == nil {
			t.Errorf("U32(% x) accepted a truncated or overlong number", b)
		}
	}
}

func TestParseEncode(t *testing.T) {
	module := Encode([]Section{
		{ID: SectionType, Content: []byte{0x01, 0x60, 0x00, 0x00}},
		{ID: SectionCustom, Content: []byte{0x01, 'x'}},
		{ID: SectionMemory, Content: []byte{0x01, 0x01, 0x02, 0x10}},
	})
	sections, err := Parse(module)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Encode(sections), module) {
		t.Error("Encode(Parse(m)) != m")
	}
	mem, ok, err := Memory(sections)
	if err != nil || !ok || mem.Min != 2 || mem.Max == nil || *mem.Max != 16 {
		t.Errorf("Memory() = %+v, %v, %v; want min 2, max 16", mem, ok, err)
	}
	outOfOrder := Encode([]Section{{ID: SectionMemory}, {ID: SectionType}})
	if _, err := Parse(outOfOrder); err == nil {
		t.Error("Parse accepted sections out of order")
	}
}
