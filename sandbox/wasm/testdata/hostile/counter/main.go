// Command counter counts forever, printing its progress to stderr: where
// it stops shows where fuel ran out.
package main

import (
	"fmt"
	"os"
)

func main() {
	for i := 0; ; i++ {
		if i%1000 == 0 {
			fmt.Fprintln(os.Stderr, "at", i)
		}
	}
}
