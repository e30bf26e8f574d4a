//go:build wasip1

package main

import "unsafe"

//go:wasmimport nebula http_request
func httpRequest(reqPtr unsafe.Pointer, reqLen uint32) uint32

//go:wasmimport nebula http_response
func httpResponse(bufPtr unsafe.Pointer, bufLen uint32) uint32

// roundTrip sends req through the host and returns the response JSON.
func roundTrip(req []byte) []byte {
	n := httpRequest(unsafe.Pointer(unsafe.SliceData(req)), uint32(len(req)))
	resp := make([]byte, n)
	got := httpResponse(unsafe.Pointer(unsafe.SliceData(resp)), n)
	return resp[:got]
}
