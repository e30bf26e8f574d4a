package ids

import (
	"testing"
	"time"
)

func TestNewSortsByTimeAndIsUnique(t *testing.T) {
	seen := make(map[string]bool)
	prev := New()
	for i := 0; i < 1000; i++ {
		id := New()
		if len(id) != 26 {
			t.Fatalf("len(%q) = %d, want 26", id, len(id))
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		if i%250 == 0 {
			time.Sleep(2 * time.Millisecond)
			next := New()
			if next[:10] <= prev[:10] {
				t.Fatalf("time prefix did not grow: %q then %q", prev, next)
			}
			prev = next
		}
	}
}
