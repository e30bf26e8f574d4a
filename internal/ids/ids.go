// Package ids makes identifiers that sort by creation time.
package ids

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// alphabet is Crockford's base32 in lower case: no i, l, o, u.
const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// New returns a 26-character id: 48 bits of milliseconds then 80 random
// bits (the ULID layout), so ids made later sort after earlier ones and
// two nodes never need to coordinate.
func New() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])
	var out [26]byte
	// 128 bits as 26 groups of 5 bits, most significant first; the first
	// group holds only the top 3 bits.
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
