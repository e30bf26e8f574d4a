// Package count is the logic of the wordcount example action, shared by
// the WebAssembly module and the benchmark that compares it with the same
// code run natively.
package count

import (
	"sort"
	"strings"
	"unicode"
)

// topN bounds the "top" list so the output stays small whatever the input.
const topN = 5

// Entry is a word and how often it occurs.
type Entry struct {
	Word  string `json:"word"`
	Count int    `json:"count"`
}

// Output is the action's output.
type Output struct {
	Words int     `json:"words"`
	Top   []Entry `json:"top"`
}

// Words counts the words of text and returns the most frequent ones.
func Words(text string) Output {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
	freq := make(map[string]int, len(words))
	for _, w := range words {
		freq[w]++
	}
	top := make([]Entry, 0, len(freq))
	for w, n := range freq {
		top = append(top, Entry{Word: w, Count: n})
	}
	// Ties break alphabetically: map order is random, the output must not be.
	sort.Slice(top, func(i, j int) bool {
		if top[i].Count != top[j].Count {
			return top[i].Count > top[j].Count
		}
		return top[i].Word < top[j].Word
	})
	if len(top) > topN {
		top = top[:topN]
	}
	return Output{Words: len(words), Top: top}
}
