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
//
// # Host functions
//
// Besides WASI preview1, a module may import functions from the "nebula"
// module, each only when its capabilities allow: Compile refuses the
// imports otherwise, and any other "nebula" import. Pointers and lengths
// are u32 offsets into the module's memory.
//
//	nebula.http_request(req_ptr u32, req_len u32) -> u32
//	nebula.http_response(buf_ptr u32, buf_len u32) -> u32
//
// Importing either takes a "net:" capability ("net:<host>", "net:*" or a
// pattern). http_request sends the request whose JSON is at
// [req_ptr, req_ptr+req_len): the params of builtin.http, {"method", "url",
// "headers", "body", "timeout", "credential", "fail_on_status"}. It blocks
// until the response, keeps the response JSON for the run and returns its
// length in bytes. http_response copies min(buf_len, length) bytes of the
// last response to buf_ptr and returns the count copied; it may be called
// again to read the same response.
//
// The response is always a JSON object: on success what Config.HTTP
// returned (builtin.http returns {"status", "headers", "body"}); on any
// failure {"error": "<message>"}, such as "capability not granted:
// net:<host>" for a host the module may not reach, a network error or a
// 4xx status under fail_on_status. Failures do not trap, so the module can
// handle them. A response over 32 MiB is an error too. A request or buffer
// outside the module's memory traps (sandbox.ErrTrap).
//
// The request is sent by Config.HTTP under the run's context: the run's
// wall-time limit and cancellation stop a slow request, and the run then
// fails with the limit's error. The host checks "net:<host>" for the URL's
// host before calling the hook, and the hook checks it again as it dials.
package wasm
