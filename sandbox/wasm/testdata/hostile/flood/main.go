// Command flood writes 100 MiB to stdout: the output limit must stop it.
package main

import (
	"bytes"
	"os"
)

func main() {
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for range 100 {
		if _, err := os.Stdout.Write(chunk); err != nil {
			os.Exit(3)
		}
	}
}
