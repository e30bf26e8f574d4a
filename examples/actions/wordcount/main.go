// Command wordcount is an example community action: a WASI preview1 command
// that reads {"text": "..."} from stdin and writes the number of words and
// the most frequent ones to stdout.
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -o wordcount.wasm ./examples/actions/wordcount
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"unicode"
)

// topN bounds the "top" list so the output stays small whatever the input.
const topN = 5

type input struct {
	Text string `json:"text"`
}

type entry struct {
	Word  string `json:"word"`
	Count int    `json:"count"`
}

type output struct {
	Words int     `json:"words"`
	Top   []entry `json:"top"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		// The sandbox puts stderr's tail into the attempt's error.
		fmt.Fprintln(os.Stderr, "wordcount: bad params:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(count(in.Text)); err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
}

func count(text string) output {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
	freq := make(map[string]int, len(words))
	for _, w := range words {
		freq[w]++
	}
	top := make([]entry, 0, len(freq))
	for w, n := range freq {
		top = append(top, entry{Word: w, Count: n})
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
	return output{Words: len(words), Top: top}
}
