//! The wasm sandbox of wasmbox: everything that touches Wasmtime.
//!
//! - [`engine`]: the one engine configuration shared by compile (in the shim) and run (in the
//!   container), so precompiled artifacts always match the engine that loads them.
//! - [`kind`]: what a file is (core module, component, WAT text, or not wasm at all).
//! - [`entrypoint`]: `args[0]` (with an optional `#func`) resolved inside a container rootfs.
//! - [`cache`]: the node-wide compile cache keyed by the wasm's SHA-256 and the engine hash.
//! - [`sandbox`]: what the OCI spec grants the guest (args, env, cwd, network, memory limit).
//! - [`policy`]: the capability policy (operator config file + `wasmbox.dev/` annotations).
//! - [`network`]: the network policy (egress, binds) applied to a component's sockets.
//! - [`memory`]: the memory budget that keeps linear memories and tables inside the limit.
//! - [`program`]: a loaded, link-checked program ready to run.
//! - [`http`]: serves a `wasi:http/proxy` component (a request per instance, hyper on tokio).
//! - [`outbound`]: its outbound requests, within the egress policy, TLS with the container's CAs.
//! - [`layer`]: the layer around Wasmtime's WASI preview 1 (the wrappers and their trampoline).
//! - [`rofs`]: EROFS (not EIO) for writes to read-only mounts, in that layer.
//! - [`listeners`]: binds a preview 1 module's declared listeners in the container's init.
//! - [`sockets`]: those listeners and their connections, served in that layer.
//! - [`run`]: runs a program in the current process and maps the outcome to an exit code.
//! - [`terminate`]: turns termination signals into epoch interruption.

pub mod cache;
pub mod connections;
pub mod engine;
pub mod http;
pub mod entrypoint;
pub mod error;
pub mod kind;
pub mod layer;
pub mod listeners;
pub mod memory;
pub mod network;
pub mod outbound;
pub mod policy;
pub mod program;
pub mod rofs;
pub mod run;
pub mod sandbox;
pub mod sockets;
pub mod stamp;
pub mod terminate;

pub use error::WasmError;
