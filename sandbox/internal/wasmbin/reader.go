package wasmbin

import (
	"fmt"
	"unicode/utf8"
)

// Reader decodes values from a byte slice, tracking its position so callers
// can copy the exact bytes of what they skipped.
type Reader struct {
	b   []byte
	pos int
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Len is the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) - r.pos }

// Pos is the offset of the next unread byte.
func (r *Reader) Pos() int { return r.pos }

// Byte reads one byte.
func (r *Reader) Byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, ErrUnexpectedEOF
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

// Peek returns the next byte without consuming it.
func (r *Reader) Peek() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, ErrUnexpectedEOF
	}
	return r.b[r.pos], nil
}

// Skip advances n bytes and returns them.
func (r *Reader) Skip(n int) ([]byte, error) {
	if n < 0 || n > r.Len() {
		return nil, ErrUnexpectedEOF
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

// Bytes reads a u32 length and that many bytes.
func (r *Reader) Bytes() ([]byte, error) {
	n, err := r.U32()
	if err != nil {
		return nil, err
	}
	return r.Skip(int(n))
}

// Name reads a length-prefixed UTF-8 string.
func (r *Reader) Name() (string, error) {
	b, err := r.Bytes()
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("wasm: name is not valid UTF-8")
	}
	return string(b), nil
}

// U32 reads an unsigned LEB128 number of at most 32 bits.
func (r *Reader) U32() (uint32, error) {
	v, err := r.uleb(32)
	return uint32(v), err
}

// U64 reads an unsigned LEB128 number of at most 64 bits.
func (r *Reader) U64() (uint64, error) { return r.uleb(64) }

func (r *Reader) uleb(bits uint) (uint64, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits { // more bytes than ceil(bits/7)
			return 0, fmt.Errorf("wasm: LEB128 number longer than %d bits at offset %d", bits, r.pos)
		}
		c, err := r.Byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
}

// S reads a signed LEB128 number of at most bits bits (33 for block types,
// 32 and 64 for constants). Only its length matters to the sandbox, so the
// value is returned without sign-range checks.
func (r *Reader) S(bits uint) (int64, error) {
	var v int64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits { // more bytes than ceil(bits/7)
			return 0, fmt.Errorf("wasm: LEB128 number longer than %d bits at offset %d", bits, r.pos)
		}
		c, err := r.Byte()
		if err != nil {
			return 0, err
		}
		v |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			if shift+7 < 64 && c&0x40 != 0 {
				v |= -1 << (shift + 7)
			}
			return v, nil
		}
	}
}

// Limits reads memory or table limits.
func (r *Reader) Limits() (lo uint32, hi *uint32, err error) {
	flag, err := r.Byte()
	if err != nil {
		return 0, nil, err
	}
	if flag > 0x03 { // 0x02/0x03: shared memory (threads); 64-bit memories are refused
		return 0, nil, fmt.Errorf("wasm: unsupported limits flag %#x", flag)
	}
	if lo, err = r.U32(); err != nil {
		return 0, nil, err
	}
	if flag&0x01 != 0 {
		v, err := r.U32()
		if err != nil {
			return 0, nil, err
		}
		hi = &v
	}
	return lo, hi, nil
}

// AppendU32 appends v as unsigned LEB128.
func AppendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

// AppendS64 appends v as signed LEB128.
func AppendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// AppendName appends a length-prefixed string.
func AppendName(b []byte, s string) []byte {
	return append(AppendU32(b, uint32(len(s))), s...)
}
