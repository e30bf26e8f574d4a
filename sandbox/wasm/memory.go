package wasm

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// allocator backs one instance's linear memory and refuses to grow it past
// limit bytes (0: no limit beyond wazero's own). It is how a single wazero
// runtime enforces a different memory limit on every run: the runtime-wide
// RuntimeConfig.WithMemoryLimitPages would need a runtime, and a compile, per
// limit.
type allocator struct {
	limit   uint64
	refused atomic.Bool // a grow was refused: a failing run ran out of memory
}

// Allocate implements experimental.MemoryAllocator.
func (a *allocator) Allocate(capacity, _ uint64) experimental.LinearMemory {
	if a.limit > 0 {
		capacity = min(capacity, a.limit)
	}
	return &linearMemory{a: a, buf: make([]byte, 0, capacity)}
}

type linearMemory struct {
	a   *allocator
	buf []byte
}

// Reallocate implements experimental.LinearMemory. Returning nil makes
// memory.grow return -1 inside the module.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if m.a.limit > 0 && size > m.a.limit {
		m.a.refused.Store(true)
		return nil
	}
	if size > uint64(cap(m.buf)) {
		// Grow like append does, but never past the limit, so a module
		// creeping up to its limit is not charged twice its memory.
		newCap := max(size, 2*uint64(cap(m.buf)))
		if m.a.limit > 0 {
			newCap = min(newCap, m.a.limit)
		}
		buf := make([]byte, size, newCap)
		copy(buf, m.buf)
		m.buf = buf
		return m.buf
	}
	m.buf = m.buf[:size]
	return m.buf
}

// Free implements experimental.LinearMemory.
func (m *linearMemory) Free() { m.buf = nil }
