// Command panic panics: the attempt must fail with the panic in its error.
package main

func main() {
	panic("hostile module gave up")
}
