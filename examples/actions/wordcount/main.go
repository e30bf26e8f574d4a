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

	"github.com/nebula-engine/nebula/examples/actions/wordcount/count"
)

func main() {
	var in struct {
		Text string `json:"text"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		// The sandbox puts stderr's tail into the attempt's error.
		fmt.Fprintln(os.Stderr, "wordcount: bad params:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(count.Words(in.Text)); err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
}
