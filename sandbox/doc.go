// Package sandbox holds what every action runner shares: the capabilities an
// action may be granted, the limits a run is held to, and the errors that
// name the limit a run broke.
//
// Runners live in subpackages; sandbox/wasm runs community actions,
// WebAssembly modules, with wazero. Trusted builtin actions still run
// in-process in the engine's worker pool.
package sandbox
