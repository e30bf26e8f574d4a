// Package wasm runs community actions: WASI preview1 command modules, run
// with wazero. Params arrive as JSON on stdin and the module writes its
// output JSON to stdout.
//
// Every run is a fresh instance with no filesystem, no network, a fixed
// clock and a fixed-seed random source unless the "clock" or "random"
// capability is granted, so that a run is a function of the module and its
// input. Runs are held to sandbox.Limits:
//
//   - Fuel: modules are rewritten at compile time to count the instructions
//     they execute (see sandbox/internal/fuel); the count is exact and the
//     same on every machine.
//   - Memory: one wazero runtime serves every limit; each instance gets a
//     memory allocator that refuses to grow past the run's limit, so
//     memory.grow fails inside the module (Go programs then abort with
//     "out of memory").
//   - Wall time: the runtime stops the module when the run's context ends.
//   - Output: stdout is captured up to the limit; a module that writes more
//     is stopped.
package wasm
