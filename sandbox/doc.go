// Package sandbox will own how actions run: the Runner interface, the
// capability model and policy, and the in-process and WebAssembly runners.
// Today every action is a trusted builtin run in-process by the engine's
// worker pool.
package sandbox
