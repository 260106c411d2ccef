//! The compile side: what a file is, where the entrypoint is, the engine, and the compile cache.
//!
//! Used by the shim (which compiles, at pull time or at Create) and by [`crate::run`] (which
//! loads what the shim compiled). Uses nothing of this crate but [`crate::error`].
//!
//! - [`kind`]: what a file is by its first bytes (core module, component, WAT, ELF, script).
//! - [`stamp`]: a file's identity without reading it (device, inode, size, times).
//! - [`digest`]: the SHA-256 that keys the cache, and the engine's tag.
//! - [`entrypoint`]: `args[0]` (with an optional `#func`) resolved inside a container rootfs.
//! - [`engine`]: the one engine configuration shared by compile and run, and its tiers.
//! - [`cache`]: the node-wide compile cache keyed by the wasm's digest and the engine's tag.
//!
//! Dependencies run down this list.

pub mod cache;
pub mod digest;
pub mod engine;
pub mod entrypoint;
pub mod kind;
pub mod stamp;
