package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b []byte
	b = append(b, 7)
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -5)
	b = AppendString(b, "héllo")
	b = AppendBytes(b, []byte{1, 2})
	b = AppendBytes(b, nil)
	b = append(b, 9, 9)

	r := NewReader(b)
	if got := r.Byte(); got != 7 {
		t.Errorf("Byte = %d", got)
	}
	if got := r.Uvarint(); got != 300 {
		t.Errorf("Uvarint = %d", got)
	}
	if got := r.Varint(); got != -5 {
		t.Errorf("Varint = %d", got)
	}
	if got := r.Str(); got != "héllo" {
		t.Errorf("Str = %q", got)
	}
	if got := r.Bytes(); !bytes.Equal(got, []byte{1, 2}) {
		t.Errorf("Bytes = %v", got)
	}
	if got := r.Bytes(); got != nil {
		t.Errorf("empty Bytes = %#v, want nil", got)
	}
	if got := r.Next(2); !bytes.Equal(got, []byte{9, 9}) {
		t.Errorf("Next = %v", got)
	}
	if r.Len() != 0 || r.Err() != nil {
		t.Errorf("at the end: Len %d, Err %v", r.Len(), r.Err())
	}
}

// TestErrorSticks reads past the end: the first error stays, and every
// later read returns the zero value.
func TestErrorSticks(t *testing.T) {
	r := NewReader(AppendString(nil, "long string")[:4])
	if s := r.Str(); s != "" || !errors.Is(r.Err(), ErrShort) {
		t.Fatalf("Str over a cut string = %q, %v", s, r.Err())
	}
	other := errors.New("other")
	r.Fail(other)
	if r.Byte() != 0 || r.Uvarint() != 0 || r.Varint() != 0 || r.Next(0) != nil || !errors.Is(r.Err(), ErrShort) {
		t.Fatalf("after the first error: Err %v, want it kept", r.Err())
	}
}
