// Package wire holds the primitives of Nebula's binary encodings (log
// entries in package fsm, packed journal rows in storage/sqlite): varints
// and length-prefixed bytes, appended to a slice and read back with an
// error that sticks, so that a record decodes field after field and is
// checked once.
package wire

import (
	"encoding/binary"
	"errors"
)

// ErrShort reports data that ends inside a field, or a length that runs
// past the end.
var ErrShort = errors.New("truncated")

// AppendString appends s with its length in front.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendBytes appends b with its length in front.
func AppendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// Reader reads fields in order. After the first error every read returns
// the zero value and Err reports that error.
type Reader struct {
	buf []byte
	err error
}

// NewReader returns a Reader over b. What it returns aliases b.
func NewReader(b []byte) Reader { return Reader{buf: b} }

// Err returns the first error met.
func (r *Reader) Err() error { return r.err }

// Len returns the number of bytes not read yet.
func (r *Reader) Len() int { return len(r.buf) }

// Fail records err, unless an error is recorded already, and stops reading.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.buf = nil
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.buf) < 1 {
		r.Fail(ErrShort)
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.Fail(ErrShort)
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.Fail(ErrShort)
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// Next reads the next n bytes as they are; the slice is not nil unless
// reading failed.
func (r *Reader) Next(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.buf)) {
		r.Fail(ErrShort)
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

// Bytes reads what AppendBytes wrote; empty reads as nil.
func (r *Reader) Bytes() []byte {
	b := r.Next(r.Uvarint())
	if len(b) == 0 {
		return nil
	}
	return b
}

// Str reads what AppendString wrote.
func (r *Reader) Str() string { return string(r.Next(r.Uvarint())) }
