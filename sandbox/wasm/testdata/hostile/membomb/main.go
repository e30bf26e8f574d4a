// Command membomb allocates until the memory limit stops it.
package main

var keep [][]byte

func main() {
	for {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = byte(i) // touch the pages so nothing is optimised away
		}
		keep = append(keep, b)
	}
}
