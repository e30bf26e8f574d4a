// Command membomb allocates until the memory limit stops it.
package main

var keep [][]byte

func main() {
	for {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch the pages so nothing is optimised away
		}
		keep = append(keep, b)
	}
}
