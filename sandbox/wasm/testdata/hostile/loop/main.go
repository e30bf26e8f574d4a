// Command loop never ends: the sandbox must stop it by fuel or wall time.
package main

var n uint64

func main() {
	for {
		n++
	}
}
