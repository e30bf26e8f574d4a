package bounded

import (
	"errors"
	"strings"
	"testing"
)

func TestBuffer(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
		full   bool
	}{
		{"unlimited", 0, []string{"abc", "def"}, "abcdef", false},
		{"fits exactly", 6, []string{"abc", "def"}, "abcdef", false},
		{"over", 5, []string{"abc", "def", "g"}, "abc", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			b := &Buffer{Max: tt.max, OnFull: func() { calls++ }}
			var err error
			for _, w := range tt.writes {
				if _, e := b.Write([]byte(w)); e != nil {
					err = e
				}
			}
			if got := string(b.Bytes()); got != tt.want {
				t.Errorf("Bytes() = %q, want %q", got, tt.want)
			}
			if b.Full() != tt.full || errors.Is(err, ErrFull) != tt.full {
				t.Errorf("Full() = %v, err = %v, want full=%v", b.Full(), err, tt.full)
			}
			if wantCalls := map[bool]int{true: 1}[tt.full]; calls != wantCalls {
				t.Errorf("OnFull called %d times, want %d", calls, wantCalls)
			}
		})
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"short", []string{"ab", "cd"}, "abcd"},
		{"keeps the end", []string{"0123", "4567", "89"}, "6789"},
		{"one big write", []string{strings.Repeat("x", 100) + "wxyz"}, "wxyz"},
		{"cut inside a character", []string{"a€bc"}, "bc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tail := &Tail{Max: 4}
			for _, w := range tt.writes {
				if n, err := tail.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := tail.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
