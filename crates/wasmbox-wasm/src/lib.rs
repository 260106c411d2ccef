//! The wasm sandbox of wasmbox: everything that touches Wasmtime.
//!
//! - [`engine`]: the one engine configuration shared by compile (in the shim) and run (in the
//!   container), so precompiled artifacts always match the engine that loads them.
//! - [`kind`]: what a file is (core module, component, WAT text, or not wasm at all).
//! - [`entrypoint`]: `args[0]` (with an optional `#func`) resolved inside a container rootfs.
//! - [`cache`]: the node-wide compile cache keyed by the wasm's SHA-256 and the engine hash.
//! - [`sandbox`]: what the OCI spec grants the guest (args, env, cwd, preopens, limits).
//! - [`program`]: a loaded, link-checked program ready to run.
//! - [`run`]: runs a program in the current process and maps the outcome to an exit code.
//! - [`terminate`]: turns termination signals into epoch interruption.

pub mod cache;
pub mod engine;
pub mod entrypoint;
pub mod error;
pub mod kind;
pub mod program;
pub mod run;
pub mod sandbox;
pub mod stamp;
pub mod terminate;

pub use error::WasmError;
