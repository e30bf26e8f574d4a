// Package bounded has writers that never hold more than a set number of
// bytes, for capturing what an untrusted module writes.
package bounded

import (
	"errors"
	"strings"
)

// ErrFull is what Buffer.Write returns once the limit is hit.
var ErrFull = errors.New("output limit reached")

// Buffer collects writes up to Max bytes (no limit when Max <= 0). The
// write that would go past Max is refused whole, OnFull is called once, and
// every later write fails too, so a module cannot fill memory by ignoring
// the error.
type Buffer struct {
	Max    int
	OnFull func()
	buf    []byte
	full   bool
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	if b.full {
		return 0, ErrFull
	}
	if b.Max > 0 && len(b.buf)+len(p) > b.Max {
		b.full = true
		if b.OnFull != nil {
			b.OnFull()
		}
		return 0, ErrFull
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Bytes returns what was written.
func (b *Buffer) Bytes() []byte { return b.buf }

// Full reports whether a write was refused.
func (b *Buffer) Full() bool { return b.full }

// Tail keeps the last Max bytes written; writes never fail.
type Tail struct {
	Max int
	buf []byte
}

// Write implements io.Writer.
func (t *Tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > t.Max {
		p = p[len(p)-t.Max:]
	}
	t.buf = append(t.buf, p...)
	// Trim only once twice the size has built up, so appends stay amortised.
	if len(t.buf) > 2*t.Max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.Max:]...)
	}
	return n, nil
}

// String returns the last Max bytes, trimmed and made valid UTF-8 (the cut
// may fall inside a character).
func (t *Tail) String() string {
	b := t.buf
	if len(b) > t.Max {
		b = b[len(b)-t.Max:]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(b), ""))
}
