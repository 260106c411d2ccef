//! WASI preview 1: the layer wasmbox puts around Wasmtime's own preview 1 for core modules.
//!
//! Wasmtime's preview 1 runs the guest; this layer wraps the functions that take a descriptor,
//! to serve preopened sockets (Wasmtime's preview 1 has none) and to report EROFS for writes to
//! read-only mounts (Wasmtime 48 reports EIO). Wasmtime is never forked.
//!
//! Its parts, each using only those above it:
//! - [`errno`]: preview 1's errno values;
//! - [`calls`]: which functions are wrapped, with their signatures;
//! - [`trampoline`]: the module through which a wrapper reaches Wasmtime's function;
//! - [`state`]: the store's data ([`P1State`]) and the sockets' table;
//! - [`rofs`]: EROFS for writes to read-only mounts;
//! - [`sockets`]: listeners and accepted connections, served in the layer;
//! - [`layer`]: the wrappers themselves, and connecting the trampoline to a guest;
//! - [`listeners`]: binds the declared listeners in the container's init, before the guest.
//!
//! Uses [`crate::policy`] (listeners, termination, memory budget) and [`crate::sandbox`].

pub mod calls;
pub mod errno;
pub mod layer;
pub mod listeners;
pub mod rofs;
pub mod sockets;
pub mod state;
pub mod trampoline;

pub use state::P1State;
pub use trampoline::trampoline_wasm;
