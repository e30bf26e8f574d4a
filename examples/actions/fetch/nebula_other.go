//go:build !wasip1

package main

// roundTrip answers like a sandbox without HTTP: the host functions exist
// only in the WebAssembly sandbox, and this file lets the package build
// (and be vetted) everywhere else.
func roundTrip([]byte) []byte {
	return []byte(`{"error":"the nebula host functions exist only in the WebAssembly sandbox (GOOS=wasip1)"}`)
}
